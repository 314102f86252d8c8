//! The backbone side of each Mask2Former form: feature maps for the head.
