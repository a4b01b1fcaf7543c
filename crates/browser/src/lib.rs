//! The browser-like client: every stage of a page load timed and recorded.
//!
//! Map (start with `browser.rs`):
//! - [`browser`] — navigate → fetch → stages; the connection pool;
//! - [`conn`] — TCP connect with TCP_INFO, TLS summary, timed I/O;
//! - [`cookies`] — the cookie jar (RFC 6265); [`hsts`] — the HSTS store;
//! - [`cors`] — CORS rules (C40); `flows` — walks (redirects, forms) and
//!   cross-origin requests built on [`Browser::send`];
//! - [`decode`] — gzip/deflate/br;
//! - [`html`] — subresource discovery, forms.
//!
//! Name lookup is [`weblab_dns::LookupChain`].

pub mod browser;
pub mod conn;
pub mod cookies;
pub mod cors;
pub mod decode;
mod error;
mod flows;
pub mod hsts;
pub mod html;
pub mod http_cache;
pub mod pipe;

pub use browser::{Browser, BrowserConfig, Destination, Fetched, Outgoing, Page, Reach};
pub use error::BrowserError;
