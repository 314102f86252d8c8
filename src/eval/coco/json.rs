//! The JSON forms of COCO ground-truth and results files as serde reads them (keys optional here, so that the
//! reader in [`super`] names a missing key with its annotation), and the two shapes a `segmentation` takes:
//! polygons or an RLE object whose `counts` is a string or a list.

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;

#[derive(Deserialize)]
pub(super) struct RawGt {
    pub(super) images: Vec<RawImage>,
    pub(super) annotations: Vec<RawAnn>,
    pub(super) categories: Vec<RawCategory>,
}

#[derive(Deserialize)]
pub(super) struct RawImage {
    pub(super) id: Option<i64>,
    pub(super) height: Option<u64>,
    pub(super) width: Option<u64>,
    pub(super) file_name: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct RawCategory {
    pub(super) id: Option<i64>,
    pub(super) name: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct RawAnn {
    pub(super) id: Option<i64>,
    pub(super) image_id: Option<i64>,
    pub(super) category_id: Option<i64>,
    pub(super) segmentation: Option<RawSegm>,
    pub(super) area: Option<f64>,
    pub(super) iscrowd: Option<Flag>,
}

#[derive(Deserialize)]
pub(super) struct RawResult {
    pub(super) image_id: Option<i64>,
    pub(super) category_id: Option<i64>,
    pub(super) segmentation: Option<RawSegm>,
    pub(super) score: Option<f64>,
    pub(super) bbox: Option<Vec<f64>>,
    /// Not in COCO's format: `dinoseg run` writes it to pair results by file name ([`super::names`]).
    pub(super) file_name: Option<String>,
    /// Not in COCO's format: `dinoseg run` writes the class name ([`super::categories_by_name`]).
    pub(super) category_name: Option<String>,
}

/// `iscrowd`: 0/1 or a boolean.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Flag {
    Bool(bool),
    Int(i64),
    Float(f64),
}

impl Flag {
    pub(super) fn is_set(&self) -> bool {
        match *self {
            Flag::Bool(b) => b,
            Flag::Int(i) => i != 0,
            Flag::Float(f) => f != 0.0,
        }
    }
}

/// A `segmentation`: polygons or an RLE object.
pub(super) enum RawSegm {
    Polygons(Vec<Vec<f64>>),
    Rle(RawRle),
}

#[derive(Deserialize)]
pub(super) struct RawRle {
    pub(super) size: Option<Vec<u64>>,
    pub(super) counts: Option<RawCounts>,
}

/// An RLE's `counts`: a compressed string or a list of run lengths.
pub(super) enum RawCounts {
    Text(String),
    List(Vec<i64>),
}

impl<'de> Deserialize<'de> for RawSegm {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawSegm;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of polygons or an RLE object {\"size\", \"counts\"}")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<RawSegm, A::Error> {
                let mut polygons = Vec::new();
                while let Some(p) = seq.next_element::<Vec<f64>>()? {
                    polygons.push(p);
                }
                Ok(RawSegm::Polygons(polygons))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<RawSegm, A::Error> {
                RawRle::deserialize(de::value::MapAccessDeserializer::new(map)).map(RawSegm::Rle)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for RawCounts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawCounts;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a compressed RLE string or a list of run lengths")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<RawCounts, E> {
                Ok(RawCounts::Text(s.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<RawCounts, A::Error> {
                let mut counts = Vec::new();
                while let Some(c) = seq.next_element::<i64>()? {
                    counts.push(c);
                }
                Ok(RawCounts::List(counts))
            }
        }
        d.deserialize_any(V)
    }
}
