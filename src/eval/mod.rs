//! Evaluation of segmentation outputs against labelled data with the metrics the field reports, computed as the
//! reference implementations do: COCO instance-mask AP as pycocotools' `COCOeval(..., "segm")` ([`coco`], over
//! the run-length masks of [`rle`]).

pub mod coco;
pub mod rle;
