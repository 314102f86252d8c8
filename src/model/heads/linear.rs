//! The DINOv3 linear semantic head.
