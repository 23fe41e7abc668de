//! Column encodings.
//!
//! The engine stores steps, times and values with pcodec in pages
//! ([`paged`]). Gorilla's XOR and delta-of-delta codecs live here too, as the
//! baseline the choice was measured against (see ARCHITECTURE.md).

pub(crate) mod bits;
pub(crate) mod bytes;
pub mod gorilla;
pub mod paged;

pub use paged::{ColumnValue, PagedReader, decode_paged, encode_paged, page_sizes};
