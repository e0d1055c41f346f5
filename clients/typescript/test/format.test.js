// The formatting helpers, in English and Danish.
import assert from "node:assert/strict";
import { test } from "node:test";
import { formatBytes, formatNumber, formatPercent } from "@quota-service/client";

test("formatNumber groups thousands as each locale does", () => {
  assert.equal(formatNumber(10000), "10,000");
  assert.equal(formatNumber(10000, "en"), "10,000");
  assert.equal(formatNumber(10000, "da"), "10.000");
  assert.equal(formatNumber(1234567, "en"), "1,234,567");
  assert.equal(formatNumber(1234567, "da"), "1.234.567");
  assert.equal(formatNumber(999, "da"), "999");
  assert.equal(formatNumber(0, "da"), "0");
  assert.equal(formatNumber(-1234, "en"), "-1,234");
  assert.equal(formatNumber(1234.5, "en", 2), "1,234.50");
  assert.equal(formatNumber(1234.5, "da", 2), "1.234,50");
  assert.equal(formatNumber(9007199254740991, "da"), "9.007.199.254.740.991");
});

test("formatBytes uses binary units with two decimals", () => {
  assert.equal(formatBytes(1073741824), "1.00 GB");
  assert.equal(formatBytes(1073741824, "en"), "1.00 GB");
  assert.equal(formatBytes(1073741824, "da"), "1,00 GB");
  assert.equal(formatBytes(0, "en"), "0 B");
  assert.equal(formatBytes(512, "da"), "512 B");
  assert.equal(formatBytes(1536, "en"), "1.50 KB");
  assert.equal(formatBytes(1536, "da"), "1,50 KB");
  assert.equal(formatBytes(5 * 1024 ** 2 + 1024 ** 2 / 4, "da"), "5,25 MB");
  assert.equal(formatBytes(1024 ** 2 - 1, "en"), "1.00 MB");
  assert.equal(formatBytes(1536 * 1024 ** 4, "en"), "1.50 PB");
  assert.equal(formatBytes(1024 ** 6, "da"), "1.024,00 PB");
  assert.equal(formatBytes(1073741824, "en", 0), "1 GB");
});

test("formatPercent writes the API's percentages rounded down, so no figure claims a threshold not reached", () => {
  assert.equal(formatPercent(80), "80%");
  assert.equal(formatPercent(80, "da"), "80%");
  assert.equal(formatPercent(56.67, "en"), "56%");
  assert.equal(formatPercent(56.67, "en", 1), "56.6%");
  // 299 of 300 (growth): almost reached, not "100%"; 597 of 750 (pro): no warning yet, not "80%".
  assert.equal(formatPercent(99.67), "99%");
  assert.equal(formatPercent(79.6), "79%");
  assert.equal(formatPercent(100), "100%");
  assert.equal(formatPercent(112.5), "112%");
  assert.equal(formatPercent(0.29, "en", 2), "0.29%");
  assert.equal(formatPercent(57), "57%");
  assert.equal(formatPercent(56.67, "da", 2), "56,67%");
  assert.equal(formatPercent(1234.5, "da", 1), "1.234,5%");
});
