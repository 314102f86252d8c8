//! The post-processing reference cases (tools/postprocess_reference.py, run once per test binary into the
//! worktree's target/fixtures_postprocess) for tests/postprocess.rs and tests/postprocess_mask2former.rs.

use dinoseg::pipeline::preprocess::{Letterbox, ResizePolicy};
use dinoseg::postprocess::{DenseResize, Labels, PostprocessConfig};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::OnceLock;
use tch::Tensor;

/// Runs the reference once per test binary (again when the script changed).
pub fn reference_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = super::root().join("target").join("fixtures_postprocess");
        let script = super::root().join("tools").join("postprocess_reference.py");
        let stamp = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let json = dir.join("postprocess.json");
        if stamp(&json).is_none() || stamp(&script) > stamp(&json) {
            let status = std::process::Command::new(super::python()).arg(&script).arg(&dir).status();
            assert!(status.expect("run tools/postprocess_reference.py").success(), "reference script failed");
        }
        dir
    })
}

pub struct Case {
    pub name: String,
    pub meta: Value,
    pub tensors: Vec<(String, Tensor)>,
}

impl Case {
    pub fn get(&self, name: &str) -> Tensor {
        super::get(&self.tensors, &format!("{}.{name}", self.name))
    }
    pub fn has(&self, name: &str) -> bool {
        self.tensors.iter().any(|(n, _)| *n == format!("{}.{name}", self.name))
    }
    pub fn boxes(&self) -> Vec<Letterbox> {
        let lb = |v: &Value| {
            let g = |k: &str| v[k].as_u64().expect("letterbox field") as u32;
            let policy = ResizePolicy::fixed(g("resized_h"), g("resized_w"));
            let mut lb = policy.plan(g("input_h"), g("input_w")).expect("plan");
            (lb.padded_h, lb.padded_w) = (g("padded_h"), g("padded_w"));
            lb
        };
        self.meta["letterboxes"].as_array().expect("letterboxes").iter().map(lb).collect()
    }
    pub fn config(&self) -> PostprocessConfig {
        let c = &self.meta["config"];
        let f = |k: &str| c[k].as_f64().expect("config field");
        PostprocessConfig {
            score_threshold: f("score_threshold"),
            query_threshold: f("query_threshold"),
            mask_threshold: f("mask_threshold"),
            overlap_threshold: f("overlap_threshold"),
            top_k: c["top_k"].as_u64().expect("top_k") as usize,
            dense_resize: DenseResize::Cpu,
        }
    }
    pub fn classes(&self) -> usize {
        self.meta["classes"].as_u64().expect("classes") as usize
    }
    pub fn labels(&self) -> Labels {
        let stuff = self.meta["stuff"].as_array().expect("stuff").iter().map(|v| v.as_u64().expect("id") as usize);
        Labels::generic(self.classes()).with_stuff(stuff)
    }
    pub fn image(&self, b: usize) -> &Value {
        &self.meta["images"][b]
    }
}

pub fn cases() -> Vec<Case> {
    let dir = reference_dir();
    let meta: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("postprocess.json")).expect("json"))
        .expect("parse json");
    let tensors = super::read(&dir.join("postprocess.safetensors"));
    let cases = meta["cases"].as_array().expect("cases");
    cases
        .iter()
        .map(|m| Case {
            name: m["name"].as_str().expect("name").to_string(),
            meta: m.clone(),
            tensors: tensors.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect(),
        })
        .collect()
}

pub fn to_u16(t: &Tensor) -> Vec<u16> {
    Vec::<i32>::try_from(t.reshape([-1])).expect("labels").into_iter().map(|v| v as u16).collect()
}

pub fn differing(a: &[u16], b: &[u16]) -> usize {
    assert_eq!(a.len(), b.len(), "sizes differ");
    a.iter().zip(b).filter(|(x, y)| x != y).count()
}
