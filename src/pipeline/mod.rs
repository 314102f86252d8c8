//! Camera frames to model input: ROS image decoding and preprocessing.

pub mod decode;
pub mod preprocess;

pub use decode::{decode_compressed, decode_image, CompressedFrame, DecodeError, Encoding, ImageFrame};
pub use image::RgbImage;
pub use preprocess::{
    preprocess, preprocess_batch, Letterbox, Normalization, PadMode, PreprocessError, Resize, ResizePolicy,
};

use crate::messages::{CompressedImageRef, Header, ImageRef};

/// A camera message (CDR of a `sensor_msgs/Image`, or of a `CompressedImage` when `compressed`) decoded to its
/// header and an RGB frame: what the runner does with each bag message and the node with each received one.
/// The error says what is wrong with the message (malformed CDR, unknown encoding, size mismatch, bad JPEG).
pub fn decode_message(cdr: &[u8], compressed: bool) -> Result<(Header, RgbImage), String> {
    if compressed {
        let m = CompressedImageRef::from_cdr(cdr).map_err(|e| format!("malformed CompressedImage message: {e}"))?;
        let header = m.header.into_owned();
        decode_compressed(&m.frame()).map(|rgb| (header, rgb)).map_err(|e| e.to_string())
    } else {
        let m = ImageRef::from_cdr(cdr).map_err(|e| format!("malformed Image message: {e}"))?;
        let header = m.header.into_owned();
        decode_image(&m.frame()).map(|rgb| (header, rgb)).map_err(|e| e.to_string())
    }
}
