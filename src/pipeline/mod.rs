//! Camera frames to model input: ROS image decoding and preprocessing.

pub mod decode;
pub mod preprocess;

pub use decode::{decode_compressed, decode_image, CompressedFrame, DecodeError, Encoding, ImageFrame};
pub use image::RgbImage;
pub use preprocess::{
    preprocess, preprocess_batch, Letterbox, Normalization, PadMode, PreprocessError, Resize, ResizePolicy,
};
