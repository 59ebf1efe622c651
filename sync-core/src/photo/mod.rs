//! Photos as evidence: prepared on the phone, verified and thumbnailed on the server.
//!
//! On the device, [`prepare`] turns a camera photo (JPEG, PNG or WebP) into the photo ChiefSync
//! stores and uploads: decoded within [`DecodeLimits`], turned upright by its EXIF orientation,
//! downscaled to at most 1920 px on the long side, re-encoded as JPEG and named by the SHA-256 of
//! those bytes. Capture time and GPS position are read from EXIF into the [`PhotoRef`] the record
//! keeps, because the re-encoded JPEG carries no EXIF. The phone's `client::attach_photo` does
//! that for a patrol or an issue: it writes the photo file atomically, puts it in the store's outbox and references it
//! from the document. The original stays on the phone; it is never uploaded.
//!
//! For the server, [`validate_upload`] decides whether uploaded bytes may be stored under their
//! name, [`thumbnail`] renders the small picture the dashboard shows, and [`evidence`] judges a
//! record's photos: which have arrived and what is doubtful about each (no EXIF, taken outside
//! the patrol, clock skew, far from the place), without ever correcting it — the one answer the
//! issue page, the issue list and the document view show.
//!
//! Every decoder reads the image header first and refuses pictures whose dimensions or decoded
//! size exceed the limits, so a decompression bomb is refused before any pixel memory is taken.
//! This module works on bytes in memory and touches no files or network; the files are the
//! phone's (`client::attach_photo`).
//!
//! ```
//! use sync_core::model::PhotoRole;
//! use sync_core::photo::{prepare, validate_upload, PrepareOptions, UploadLimits};
//!
//! // A 2400×1800 camera picture (here painted in code).
//! let picture = image::RgbImage::from_fn(2400, 1800, |x, y| image::Rgb([x as u8, y as u8, 90]));
//! let mut camera = Vec::new();
//! image::DynamicImage::ImageRgb8(picture)
//!     .write_to(&mut std::io::Cursor::new(&mut camera), image::ImageFormat::Png)?;
//!
//! let prepared = prepare(&camera, &PrepareOptions::default())?;
//! assert_eq!((prepared.width, prepared.height), (1920, 1440));
//! let photo = prepared.photo_ref(PhotoRole::Before);
//! assert_eq!(photo.bytes, prepared.jpeg.len() as u64);
//!
//! // What the server checks when the phone uploads it under its name.
//! let info = validate_upload(&prepared.jpeg, &photo.sha256, &UploadLimits::default())?;
//! assert_eq!((info.width, info.height), (1920, 1440));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod evidence;
mod exif;
mod pairing;
mod prepare;
mod render;
mod verify;

#[cfg(test)]
pub(crate) mod testimg;

pub use evidence::{
    evidence, evidence_checks, issue_photos, patrol_window, Arrival, EvidenceContext, EvidenceFlag,
    EvidenceRules, PhotoEvidence,
};
pub use exif::{ExifFacts, CHINA_OFFSET_MINUTES};
pub use pairing::{pair_photos, PhotoPair};
pub use prepare::{prepare, PrepareOptions, PreparedPhoto};
pub use verify::{
    thumbnail, validate_upload, ImageInfo, UploadLimits, THUMBNAIL_QUALITY, THUMBNAIL_SIDE,
};

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::doc::DocError;

/// How far a decoder may go before it has seen a single pixel. The defaults admit any phone
/// camera (a 200-megapixel sensor writes 16320×12240, which is refused; 108 MP at 12000×9000 is
/// the largest accepted) and keep one decode under 512 MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    pub max_width: u32,
    pub max_height: u32,
    /// The most memory the decoded picture and the decoder's own buffers may take, bytes.
    pub max_alloc: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_width: 12_000,
            max_height: 12_000,
            max_alloc: 512 * 1024 * 1024,
        }
    }
}

/// The picture formats ChiefSync accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhotoFormat {
    Jpeg,
    Png,
    WebP,
}

impl PhotoFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            PhotoFormat::Jpeg => "jpeg",
            PhotoFormat::Png => "png",
            PhotoFormat::WebP => "webp",
        }
    }

    /// The media type to serve the bytes with.
    pub fn mime(self) -> &'static str {
        match self {
            PhotoFormat::Jpeg => "image/jpeg",
            PhotoFormat::Png => "image/png",
            PhotoFormat::WebP => "image/webp",
        }
    }

    /// The usual file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            PhotoFormat::Jpeg => "jpg",
            PhotoFormat::Png => "png",
            PhotoFormat::WebP => "webp",
        }
    }
}

impl fmt::Display for PhotoFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a photo was refused or could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PhotoError {
    /// More bytes than allowed, before anything was decoded.
    #[error("photo is {bytes} bytes, more than the {max} allowed")]
    TooLarge { bytes: u64, max: u64 },
    /// The header declares dimensions beyond the limits (a decompression bomb, or a panorama
    /// no phone takes); refused before decoding.
    #[error("photo is {width}×{height} px, more than the {max_width}×{max_height} allowed")]
    TooManyPixels {
        width: u32,
        height: u32,
        max_width: u32,
        max_height: u32,
    },
    /// Decoding would take more memory than allowed.
    #[error("decoding the photo would need more than {max_alloc} bytes: {detail}")]
    OverAllocation { max_alloc: u64, detail: String },
    /// The bytes are not a picture of any known format.
    #[error("not an image")]
    NotAnImage,
    /// A picture, but not JPEG, PNG or WebP, or a variant of them the decoder does not handle.
    #[error("unsupported image: {detail}")]
    Unsupported { detail: String },
    /// A JPEG, PNG or WebP that does not decode: truncated or damaged.
    #[error("damaged image: {detail}")]
    Corrupt { detail: String },
    /// The bytes do not hash to the name they were sent under.
    #[error("photo bytes hash to {actual}, not to their name {expected}")]
    HashMismatch { expected: String, actual: String },
    /// Resizing or re-encoding a picture that decoded fine failed.
    #[error("re-rendering the photo failed: {detail}")]
    Render { detail: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Doc(#[from] DocError),
}

/// Lower-case hex SHA-256 of `bytes`: a photo's name.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}
