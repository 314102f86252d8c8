//! Post-processing: raw head outputs to label maps, instances and panoptic segments at the input resolution.
