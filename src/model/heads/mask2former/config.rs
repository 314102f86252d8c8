//! The Mask2Former checkpoint forms (see the module doc of [`super`]).
