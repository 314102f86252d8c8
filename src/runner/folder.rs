//! Results as files: for a frame named `NAME` (an image's file stem, or a bag message's stamp in nanoseconds),
//! `NAME_semantic.png` (class id per pixel, 8-bit or 16-bit grey), `NAME_semantic_color.png`,
//! `NAME_overlay.png`, `NAME_instance_ids.png` (16-bit grey: 0 = none, k = the k-th entry of the JSON list) and
//! `NAME_instances.json` (`{"width", "height", "class_names", "instances": [{"id", "class_id", "class_name",
//! "score", "bbox": [x, y, w, h], "area"}]}`), each written when its output is switched on. The other heads'
//! semantic maps ([`crate::plan::HeadPlan::extra_semantic`]) go into a folder per head, as their topics do:
//! `HEAD/NAME_semantic.png`, `HEAD/NAME_semantic_color.png` (`HEAD`: [`crate::topics::head_token`]).
//! For the whole run, in the formats evaluation reads ([`super::eval_files`]): `coco_results.json` (with the
//! instance files) and `panoptic/NAME.png` + `panoptic.json` (with the semantic or instance files, for frames
//! with a panoptic map), the JSON files written by [`FolderWriter::finish`].

use super::eval_files::{EvalFiles, FrameId};
use crate::error::{Error, Result};
use crate::postprocess::{FrameSegmentation, LabelData, LabelMap, Labels};
use crate::render;
use crate::topics::{Output, OutputSet};
use image::{ImageBuffer, Luma, Rgb};
use std::path::{Path, PathBuf};

/// Writes frames' results into a folder.
pub struct FolderWriter {
    dir: PathBuf,
    /// The outputs switched on: `instances` or `instance_ids` writes both instance files.
    outputs: OutputSet,
    /// The run's results in the evaluation formats.
    eval: EvalFiles,
}

pub(super) fn save<P: image::Pixel<Subpixel = S> + image::PixelWithColorType, S: image::Primitive>(
    img: &ImageBuffer<P, Vec<S>>,
    path: &Path,
) -> Result<()>
where
    [S]: image::EncodableLayout,
{
    // Encoded in memory, then written under a temporary name and renamed: no half-written PNG is ever seen.
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Png)
        .map_err(|e| Error::Input(format!("{}: cannot encode: {e}", path.display())))?;
    crate::files::write_atomic(path, bytes.get_ref())
}

impl FolderWriter {
    /// A writer into `dir` (made if missing); `labels` are the classes of the head giving instances and the
    /// panoptic map, when known (they name `panoptic.json`'s categories).
    pub fn create(dir: &Path, outputs: OutputSet, labels: Option<Labels>) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let instances = outputs.contains(Output::Instances) || outputs.contains(Output::InstanceIds);
        let panoptic = instances || outputs.contains(Output::Semantic);
        let eval = EvalFiles::new(dir, instances, panoptic, labels);
        Ok(FolderWriter { dir: dir.to_path_buf(), outputs, eval })
    }

    /// Writes the run's evaluation files (`coco_results.json`, `panoptic.json`) with every frame written so far.
    pub fn finish(&self) -> Result<()> {
        self.eval.finish()
    }

    fn on(&self, o: Output) -> bool {
        self.outputs.contains(o)
    }

    /// Whether the instance files (`instance_ids.png`, `instances.json`) are written.
    fn instances(&self) -> bool {
        self.on(Output::Instances) || self.on(Output::InstanceIds)
    }

    /// `NAME_semantic.png` and `NAME_semantic_color.png` of one semantic map into `dir`, as switched on.
    fn semantic_files(&self, dir: &Path, name: &str, sem: &LabelMap, colors: Option<&Vec<u8>>) -> Result<()> {
        let path = |suffix: &str| dir.join(format!("{name}_{suffix}"));
        let bad =
            || Error::Input(format!("{name}: the semantic map does not match its {}x{} size", sem.width, sem.height));
        if self.on(Output::Semantic) {
            match &sem.data {
                LabelData::U8(v) => save(
                    &ImageBuffer::<Luma<u8>, _>::from_raw(sem.width, sem.height, v.clone()).ok_or_else(bad)?,
                    &path("semantic.png"),
                )?,
                LabelData::U16(v) => save(
                    &ImageBuffer::<Luma<u16>, _>::from_raw(sem.width, sem.height, v.clone()).ok_or_else(bad)?,
                    &path("semantic.png"),
                )?,
            }
        }
        if let Some(c) = colors.filter(|_| self.on(Output::SemanticColor)) {
            let img = ImageBuffer::<Rgb<u8>, _>::from_raw(sem.width, sem.height, c.clone()).ok_or_else(bad)?;
            save(&img, &path("semantic_color.png"))?;
        }
        Ok(())
    }

    /// Writes one frame's files and keeps its results for the run's files; `rgb` is the camera frame (rgb8,
    /// `height` x `width`).
    pub fn write(
        &mut self,
        id: &FrameId<'_>,
        rgb: &[u8],
        height: u32,
        width: u32,
        seg: &FrameSegmentation,
        color: &dyn Fn(u16) -> [u8; 3],
    ) -> Result<()> {
        let name = id.name;
        let path = |suffix: &str| self.dir.join(format!("{name}_{suffix}"));
        let bad = |what: &str| Error::Input(format!("{name}: {what} does not match the {width}x{height} frame"));
        for h in &seg.heads {
            let dir = self.dir.join(crate::topics::head_token(&h.head));
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            let colors = self.on(Output::SemanticColor).then(|| render::semantic_color(&h.semantic, color));
            self.semantic_files(&dir, name, &h.semantic, colors.as_ref())?;
        }
        // Made once, shared by their own files and the overlay.
        let colors = seg
            .semantic
            .as_ref()
            .filter(|_| self.on(Output::SemanticColor) || self.on(Output::Overlay))
            .map(|sem| render::semantic_color(sem, color));
        let ids = (self.instances() || self.on(Output::Overlay)).then(|| render::instance_ids(seg, height, width));
        if let Some(sem) = seg.semantic.as_ref() {
            self.semantic_files(&self.dir, name, sem, colors.as_ref())?;
        }
        if self.on(Output::Overlay) {
            let over = render::overlay_with(rgb, height, width, seg, colors.as_deref(), ids.as_deref(), color, 0.5);
            save(
                &ImageBuffer::<Rgb<u8>, _>::from_raw(width, height, over).ok_or_else(|| bad("overlay"))?,
                &path("overlay.png"),
            )?;
        }
        if let Some(ids) = ids.filter(|_| self.instances()) {
            save(
                &ImageBuffer::<Luma<u16>, _>::from_raw(width, height, ids).ok_or_else(|| bad("instance ids"))?,
                &path("instance_ids.png"),
            )?;
            let list: Vec<serde_json::Value> = seg
                .instances
                .iter()
                .map(|i| {
                    serde_json::json!({
                        "id": i.id, "class_id": i.class_id, "class_name": i.class_name, "score": i.score,
                        "bbox": [i.bbox.x, i.bbox.y, i.bbox.width, i.bbox.height], "area": i.area,
                    })
                })
                .collect();
            let doc = serde_json::json!({
                "width": width, "height": height, "class_names": seg.class_names, "instances": list,
            });
            let p = path("instances.json");
            let text = serde_json::to_string_pretty(&doc).map_err(|e| Error::Input(e.to_string()))?;
            crate::files::write_atomic(&p, text.as_bytes())?;
        }
        self.eval.add(id, seg, height, width)
    }
}
