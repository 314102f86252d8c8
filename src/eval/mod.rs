//! `dinoseg eval`: segmentation metrics from standard files, computed as the reference implementations do.
//!
//! - [`label_png`]: reading label-map PNGs (grey 8/16-bit, palette index) and COCO panoptic RGB id PNGs.
//! - [`semantic`]: mIoU and pixel accuracy over label PNGs paired by file name (mmseg / DINOv3 evaluation).
//! - [`panoptic_json`]: the COCO panoptic JSON format (annotations, segments_info, categories).
//! - [`panoptic`]: PQ, SQ, RQ over COCO panoptic sets (panopticapi's `pq_compute`).
//! - [`coco`]: COCO instance-mask AP as pycocotools' `COCOeval(..., "segm")`, over the run-length masks of
//!   [`rle`].
//!
//! Each metric has an in-memory core (maps and annotations in, numbers out) and a wrapper that reads the files
//! through [`crate::files`]' caps.

pub mod coco;
pub mod label_png;
pub mod panoptic;
pub mod panoptic_json;
pub mod rle;
pub mod semantic;
