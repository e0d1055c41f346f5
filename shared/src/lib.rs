//! The quota service's common crate: the domain (pure), the DynamoDB store,
//! the HTTP edge (`api`), notices and events, and the dependencies every
//! function builds in `main`.

pub mod api;
pub mod bus;
pub mod clients;
pub mod clock;
pub mod delivery;
pub mod deps;
pub mod domain;
pub mod email;
pub mod outbound;
pub mod store;
pub mod timeouts;

pub use api::ApiError;
pub use clock::Clock;
pub use deps::Deps;
