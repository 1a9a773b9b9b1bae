//! `fake-server`: fake cPanel servers for whmtoken's tests and test environments, in any
//! backend kind registered in `whmtoken_backends` (built from the `whmtoken-fixtures`
//! crate's scenarios), dumped, changed, and served over HTTP(S) as a fake WHM ([`serve`]).
//!
//! The binary (`src/main.rs`) is [`main`] alone, so that a test binary can act as
//! `fake-server` by calling it.

mod command;
pub mod serve;

pub use command::main;
