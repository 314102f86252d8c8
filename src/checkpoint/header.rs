//! Safetensors files, read with our own checks (format: 8-byte little-endian header length `n`, `n` bytes of
//! JSON `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {key: string}}`, then the data).
//! Every check happens on the header before any tensor byte is read or allocated: header length against the
//! file and a 100 MiB cap, UTF-8 JSON, known dtypes, shapes whose byte size is the tensor's byte range, ranges
//! inside the data and not overlapping, and the data ending where the file ends. Errors name the file and the
//! tensor.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use tch::{Kind, Tensor};

/// Largest header accepted (the format's own reference reader caps it at 100 MB too).
pub const MAX_HEADER: u64 = 100 << 20;

/// Most tensors in one file.
pub const MAX_TENSORS: usize = 1_000_000;

/// A tensor element type of the safetensors format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    Bool,
    U8,
    I8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F16,
    BF16,
    F32,
    F64,
    F8E4M3,
    F8E5M2,
}

impl Dtype {
    fn parse(s: &str) -> Option<Self> {
        use Dtype::*;
        Some(match s {
            "BOOL" => Bool,
            "U8" => U8,
            "I8" => I8,
            "I16" => I16,
            "U16" => U16,
            "I32" => I32,
            "U32" => U32,
            "I64" => I64,
            "U64" => U64,
            "F16" => F16,
            "BF16" => BF16,
            "F32" => F32,
            "F64" => F64,
            "F8_E4M3" => F8E4M3,
            "F8_E5M2" => F8E5M2,
            _ => return None,
        })
    }

    /// The format's spelling (`F32`, `I32`, ...).
    pub fn name(&self) -> &'static str {
        use Dtype::*;
        match self {
            Bool => "BOOL",
            U8 => "U8",
            I8 => "I8",
            I16 => "I16",
            U16 => "U16",
            I32 => "I32",
            U32 => "U32",
            I64 => "I64",
            U64 => "U64",
            F16 => "F16",
            BF16 => "BF16",
            F32 => "F32",
            F64 => "F64",
            F8E4M3 => "F8_E4M3",
            F8E5M2 => "F8_E5M2",
        }
    }

    /// Bytes per element.
    pub fn size(&self) -> u64 {
        use Dtype::*;
        match self {
            Bool | U8 | I8 | F8E4M3 | F8E5M2 => 1,
            I16 | U16 | F16 | BF16 => 2,
            I32 | U32 | F32 => 4,
            I64 | U64 | F64 => 8,
        }
    }

    /// Whether the type holds real numbers (what model weights are).
    pub fn is_float(&self) -> bool {
        matches!(self, Dtype::F16 | Dtype::BF16 | Dtype::F32 | Dtype::F64 | Dtype::F8E4M3 | Dtype::F8E5M2)
    }

    /// The libtorch kind, for the types libtorch reads here.
    pub fn kind(&self) -> Option<Kind> {
        use Dtype::*;
        Some(match self {
            Bool => Kind::Bool,
            U8 => Kind::Uint8,
            I8 => Kind::Int8,
            I16 => Kind::Int16,
            I32 => Kind::Int,
            I64 => Kind::Int64,
            F16 => Kind::Half,
            BF16 => Kind::BFloat16,
            F32 => Kind::Float,
            F64 => Kind::Double,
            U16 | U32 | U64 | F8E4M3 | F8E5M2 => return None,
        })
    }
}

/// One tensor of a header.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorEntry {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<i64>,
    /// Byte range in the data section (after the header).
    pub begin: u64,
    pub end: u64,
}

/// A checked safetensors header.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Header {
    /// Tensors in file order (by data offset).
    pub tensors: Vec<TensorEntry>,
    /// `__metadata__` (string values only, as the format requires).
    pub metadata: BTreeMap<String, String>,
    /// Where the data section starts in the file (8 + header length).
    pub data_start: u64,
}

impl Header {
    /// Total number of elements of every tensor.
    pub fn numel(&self) -> u64 {
        self.tensors.iter().map(|t| t.shape.iter().map(|&d| d as u64).product::<u64>()).sum()
    }
}

fn shorten(s: &str) -> String {
    crate::error::shorten(s, 80)
}

/// The header length a file starts with: checked against the cap and the file length.
pub fn header_len(first8: &[u8], file_len: u64, path: &Path) -> Result<u64> {
    let err = |m: String| Error::checkpoint(path, format!("not a readable safetensors file: {m}"));
    let len: [u8; 8] = first8
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| err(format!("{file_len} bytes, shorter than its 8-byte header length")))?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER {
        return Err(err(format!("safetensors header length {n} is larger than the {MAX_HEADER}-byte limit")));
    }
    if n.saturating_add(8) > file_len {
        return Err(err(format!("truncated: header length {n} for a file of {file_len} bytes")));
    }
    Ok(n)
}

/// Parses and checks the header at the start of `bytes` (at least its first `8 + n` bytes; more is ignored) of
/// a file of `file_len` bytes. Nothing is allocated beyond the header's own size.
pub fn parse_header(bytes: &[u8], file_len: u64, path: &Path) -> Result<Header> {
    let err = |m: String| Error::checkpoint(path, format!("not a readable safetensors file: {m}"));
    let n = header_len(bytes, file_len, path)?;
    let json = bytes.get(8..8 + n as usize).ok_or_else(|| {
        err(format!("truncated safetensors header: {} of {} bytes", bytes.len().saturating_sub(8), n))
    })?;
    let text = std::str::from_utf8(json)
        .map_err(|e| err(format!("safetensors header is not UTF-8 (header byte offset {})", e.valid_up_to())))?;
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| err(format!("safetensors header is not valid JSON: {e}")))?;
    let obj = value.as_object().ok_or_else(|| err("safetensors header is not a JSON object".into()))?;
    if obj.len() > MAX_TENSORS {
        return Err(err(format!("safetensors header lists {} tensors, more than {MAX_TENSORS}", obj.len())));
    }
    let data_len = file_len - 8 - n;
    let mut header = Header { data_start: 8 + n, ..Default::default() };
    for (name, v) in obj {
        if name == "__metadata__" {
            let md = v.as_object().ok_or_else(|| err("`__metadata__` is not a JSON object".into()))?;
            for (k, v) in md {
                let s = v.as_str().ok_or_else(|| {
                    err(format!("`__metadata__` key `{}` is not a string: {}", shorten(k), shorten(&v.to_string())))
                })?;
                header.metadata.insert(k.clone(), s.to_string());
            }
            continue;
        }
        header
            .tensors
            .push(parse_entry(name, v, data_len).map_err(|m| err(format!("tensor `{}`: {m}", shorten(name))))?);
    }
    header.tensors.sort_by_key(|t| (t.begin, t.end));
    let mut at = 0u64;
    for (i, t) in header.tensors.iter().enumerate() {
        if t.begin < at {
            let prev = i.checked_sub(1).and_then(|p| header.tensors.get(p)).map_or("", |p| p.name.as_str());
            return Err(err(format!(
                "tensor `{}` (bytes {}..{}) overlaps tensor `{}` (ending at {at})",
                shorten(&t.name),
                t.begin,
                t.end,
                shorten(prev)
            )));
        }
        if t.begin > at {
            return Err(err(format!("{} unused bytes before tensor `{}` (at data offset {at})", t.begin - at, t.name)));
        }
        at = t.end;
    }
    if at != data_len {
        return Err(err(format!(
            "truncated or corrupt safetensors file: its header describes {} data bytes, the file holds {data_len} \
             after the {n}-byte header",
            at
        )));
    }
    Ok(header)
}

fn parse_entry(name: &str, v: &serde_json::Value, data_len: u64) -> std::result::Result<TensorEntry, String> {
    let dtype_s = v.get("dtype").and_then(|d| d.as_str()).ok_or("no `dtype` string")?;
    let dtype = Dtype::parse(dtype_s).ok_or_else(|| format!("unknown dtype `{}`", shorten(dtype_s)))?;
    let shape_v = v.get("shape").and_then(|s| s.as_array()).ok_or("no `shape` list")?;
    if shape_v.len() > 16 {
        return Err(format!("{} dimensions (at most 16)", shape_v.len()));
    }
    let mut shape = Vec::with_capacity(shape_v.len());
    for d in shape_v {
        let d = d.as_u64().filter(|&d| d <= i64::MAX as u64).ok_or_else(|| format!("bad dimension {d} in `shape`"))?;
        shape.push(d as i64);
    }
    let offs = v.get("data_offsets").and_then(|o| o.as_array()).ok_or("no `data_offsets` pair")?;
    let (begin, end) = match offs.as_slice() {
        [b, e] => (b.as_u64().ok_or("bad `data_offsets` begin")?, e.as_u64().ok_or("bad `data_offsets` end")?),
        _ => return Err(format!("`data_offsets` has {} entries, expected 2", offs.len())),
    };
    if begin > end || end > data_len {
        return Err(format!(
            "data_offsets [{begin}, {end}] outside the {data_len} data bytes of the file (truncated or corrupt)"
        ));
    }
    let bytes = shape
        .iter()
        .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d as u64))
        .ok_or_else(|| format!("shape {shape:?} overflows"))?;
    if bytes != end - begin {
        return Err(format!(
            "shape {shape:?} of {} needs {bytes} bytes, its data_offsets [{begin}, {end}] hold {}",
            dtype.name(),
            end - begin
        ));
    }
    Ok(TensorEntry { name: name.to_string(), dtype, shape, begin, end })
}

/// Reads and checks the header of the safetensors file `path` (a regular file; only `8 + n` bytes are read).
pub fn read_header(path: &Path) -> Result<Header> {
    let mut file = crate::files::open_regular(path, "safetensors file")?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut first = Vec::with_capacity(8);
    (&mut file).take(8).read_to_end(&mut first).map_err(|e| Error::io(path, e))?;
    let n = header_len(&first, file_len, path)?;
    let mut bytes = first;
    bytes.reserve(n as usize);
    (&mut file).take(n).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    parse_header(&bytes, file_len, path)
}

/// Reads every tensor of a safetensors file, after checking its header; tensors of types libtorch does not
/// read here (U16, U32, U64, F8) are refused naming them.
pub fn read_tensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let header = read_header(path)?;
    let mut file = crate::files::open_regular(path, "safetensors file")?;
    file.seek(SeekFrom::Start(header.data_start)).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::with_capacity(header.tensors.len());
    let mut buf = Vec::new();
    for t in &header.tensors {
        let kind = t.dtype.kind().ok_or_else(|| {
            Error::checkpoint(path, format!("tensor `{}`: dtype {} is not supported", t.name, t.dtype.name()))
        })?;
        buf.clear();
        let len = t.end - t.begin;
        (&mut file).take(len).read_to_end(&mut buf).map_err(|e| Error::io(path, e))?;
        if buf.len() as u64 != len {
            return Err(Error::checkpoint(
                path,
                format!(
                    "tensor `{}`: file ended after {} of its {len} bytes (it shrank while read)",
                    t.name,
                    buf.len()
                ),
            ));
        }
        let tensor = Tensor::f_from_data_size(&buf, &t.shape, kind)
            .map_err(|e| Error::checkpoint(path, format!("tensor `{}`: {e}", t.name)))?;
        out.push((t.name.clone(), tensor));
    }
    Ok(out)
}
