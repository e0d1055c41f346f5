//! The quota service's common crate: the domain (pure), the DynamoDB store,
//! auth, HTTP plumbing and the dependencies every function builds in `main`.

pub mod auth;
pub mod clients;
pub mod clock;
pub mod deps;
pub mod domain;
pub mod error;
pub mod events;
pub mod http;
pub mod notify;
pub mod store;
pub mod timeouts;

pub use clock::Clock;
pub use deps::Deps;
pub use error::ApiError;
