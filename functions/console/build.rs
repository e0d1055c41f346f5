//! Compiles the operator console's built files (`clients/web/dist/console`,
//! committed, so that no npm is needed to build the functions) into the
//! binary: `$OUT_DIR/assets.rs` lists each file's path, bytes and type.

use std::fmt::Write;
use std::path::{Path, PathBuf};

/// The built console, from the package's root. Relative on purpose: cargo
/// keeps a relative `rerun-if-changed` path relative to the package, so a
/// second checkout sharing the target directory (CI's cache) is checked
/// against its own files, not those of the checkout that built first.
const DIST: &str = "../../clients/web/dist/console";

fn main() {
    // At run time, not `env!` (which the build script's own compilation
    // would fix to the first checkout that built it).
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let dir = root.join(DIST);
    println!("cargo::rerun-if-changed={DIST}");
    let mut files = Vec::new();
    collect(&dir, &dir, &mut files);
    files.sort();
    // Committed with the source: without it the function would serve
    // nothing, so the build stops instead.
    assert!(
        files.iter().any(|(name, _)| name == "index.html"),
        "{} has no index.html: build it (cd clients/web && npm ci && npm run build)",
        dir.display()
    );
    // Copied beside the generated list, so that what is compiled in is
    // this run's files whatever checkout they came from.
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let mut out = String::from("/// The console's files: path below `/console/`, bytes, content type.\n");
    out.push_str("pub const ASSETS: &[(&str, &[u8], &str)] = &[\n");
    for (i, (name, path)) in files.iter().enumerate() {
        println!("cargo::rerun-if-changed={DIST}/{name}");
        let copy = out_dir.join(format!("asset-{i}"));
        // Bytes, not `fs::copy`: that copies permissions too, and a
        // read-only source would leave a copy the next run cannot replace.
        std::fs::write(&copy, std::fs::read(path).expect("read a console file")).expect("copy a console file");
        let _ = writeln!(
            out,
            "    ({name:?}, include_bytes!({:?}), {:?}),",
            copy.display().to_string(),
            content_type(name)
        );
    }
    out.push_str("];\n");
    std::fs::write(out_dir.join("assets.rs"), out).expect("write assets.rs");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files);
        } else if let Ok(relative) = path.strip_prefix(root) {
            let name = relative.to_string_lossy().replace('\\', "/");
            files.push((name, path.canonicalize().unwrap_or(path)));
        }
    }
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "map" => "application/json",
        _ => "application/octet-stream",
    }
}
