//! Reader for PyTorch checkpoints (`torch.save` zip archives, PyTorch >= 1.6) without Python.
//!
//! Format (PyTorch `torch/serialization.py`, `_save`): a zip archive whose entries share one prefix
//! (`<prefix>/data.pkl`, `<prefix>/byteorder`, `<prefix>/data/<key>`). `data.pkl` is a pickle (Python
//! `pickletools` protocols 2-5) in which every tensor is `torch._utils._rebuild_tensor_v2(storage, offset,
//! size, stride, requires_grad, backward_hooks[, metadata])` and every storage is a persistent id
//! `('storage', torch.<Type>Storage, key, location, numel)` whose raw bytes are the entry `<prefix>/data/<key>`.
//!
//! The pickle runs on a small stack machine that knows only the opcodes `torch.save` emits and an allow-list
//! of callables (`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`, `_rebuild_parameter`,
//! `_rebuild_parameter_with_state`, the `torch.*Storage` types). Nothing is ever imported or executed: any other
//! global (`os.system`, `argparse.Namespace`, numpy scalars, optimizer classes) becomes an inert placeholder, so
//! the other entries of a training checkpoint do not stop us from reading its weights, and reading fails,
//! naming the global, if a placeholder is where the state dict should be. Sizes from the file are checked
//! against the data present before anything is allocated; every failure is an [`Error::Checkpoint`] naming
//! the file.
//!
//! Accepted layouts: a dict of tensors (a `state_dict()`), or a dict wrapping one under one of
//! [`WRAPPER_KEYS`] (searched in that order, up to three levels deep, e.g. `{"teacher": {...}}`). Key prefixes
//! (`module.`, `backbone.`) are left to the caller (see `checkpoint::official`). Legacy (pre-1.6, non-zip)
//! files are refused with a hint to re-save them.

use crate::checkpoint::strided;
use crate::error::{Error, Result};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::rc::Rc;
use tch::{Kind, Tensor};

/// Most entries of a checkpoint archive (`torch.save` writes one per storage), and the largest `data.pkl` (a
/// state dict's pickle is a few MB even for the largest models).
pub const MAX_ENTRIES: usize = 200_000;
pub const MAX_PICKLE: u64 = 64 << 20;

/// Keys under which training checkpoints wrap their state dict, tried in this order.
pub const WRAPPER_KEYS: &[&str] = &["model", "state_dict", "teacher", "network"];

/// Reads the tensors of a `torch.save` zip checkpoint (see the module docs for the accepted layouts), in the
/// order they were saved. Tensors are on the CPU with the dtype they were saved with.
pub fn read_torch_state_dict(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let err = |m: String| Error::checkpoint(path, m);
    let mut file = crate::files::open_regular(path, "checkpoint")?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut magic = Vec::with_capacity(4);
    (&mut file).take(4).read_to_end(&mut magic).map_err(|e| Error::io(path, e))?;
    if !magic.starts_with(b"PK") {
        return Err(err(if magic.len() >= 2 && magic[0] == 0x80 && magic[1] <= 5 {
            "legacy (pre-1.6, non-zip) torch.save format is not supported: re-save it with a recent PyTorch, \
             e.g. `torch.save(torch.load(src, weights_only=True), dst)`"
                .into()
        } else {
            "not a PyTorch checkpoint: expected a torch.save zip archive".into()
        }));
    }
    file.seek(SeekFrom::Start(0)).map_err(|e| Error::io(path, e))?;
    let zip = zip::ZipArchive::new(file).map_err(|e| err(format!("corrupt or truncated zip archive: {e}")))?;
    if zip.len() > MAX_ENTRIES {
        return Err(err(format!("zip archive of {} entries, more than {MAX_ENTRIES}", zip.len())));
    }
    let pkls: Vec<String> = zip
        .file_names()
        .filter(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
        .map(String::from)
        .collect();
    let prefix = match pkls.as_slice() {
        [one] => one.trim_end_matches("data.pkl").to_string(),
        [] => return Err(err("zip archive without `<prefix>/data.pkl`: not a torch.save checkpoint".into())),
        _ => return Err(err(format!("several pickles in one archive: {}", pkls.join(", ")))),
    };
    let mut archive = Archive { zip, prefix, file_len, storages: HashMap::new() };
    if let Some(order) = archive.entry("byteorder").map_err(&err)? {
        if order != b"little" {
            let order = String::from_utf8_lossy(&order).into_owned();
            return Err(err(format!("byte order `{order}` is not supported (only little-endian)")));
        }
    }
    let pickle = archive.entry("data.pkl").map_err(&err)?.ok_or_else(|| err("no data.pkl".into()))?;
    let mut vm =
        Vm { data: &pickle, pos: 0, stack: Vec::new(), marks: Vec::new(), memo: HashMap::new(), heap: Vec::new() };
    let top = vm.run(&mut archive).map_err(&err)?;
    vm.state_dict(&top, 0).map_err(err)
}

/// The zip archive and the storages already read from it.
struct Archive {
    zip: zip::ZipArchive<File>,
    prefix: String,
    file_len: u64,
    storages: HashMap<String, Tensor>,
}

impl Archive {
    /// Reads `<prefix>/<name>` whole; None if absent. The zip reader bounds it by the entry's declared size and
    /// checks its CRC; memory is reserved only up to the archive's size.
    fn entry(&mut self, name: &str) -> std::result::Result<Option<Vec<u8>>, String> {
        let full = format!("{}{name}", self.prefix);
        let mut f = match self.zip.by_name(&full) {
            Ok(f) => f,
            Err(zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(e) => return Err(format!("entry `{full}`: {e}")),
        };
        // Declared sizes are checked before reading: an entry cannot hold more than the archive (torch.save stores
        // entries uncompressed), and the pickle is capped on its own.
        let cap = if name == "data.pkl" { MAX_PICKLE.min(self.file_len) } else { self.file_len };
        if f.size() > cap {
            let n = f.size();
            return Err(format!(
                "entry `{full}` declares {n} bytes, more than the {cap}-byte limit ({MAX_PICKLE} for \
                                a pickle, else the archive's {} bytes)",
                self.file_len
            ));
        }
        let mut buf = Vec::with_capacity(f.size() as usize);
        let read = (&mut f).take(cap + 1).read_to_end(&mut buf);
        read.map_err(|e| format!("entry `{full}` is corrupt or truncated: {e}"))?;
        if buf.len() as u64 > cap {
            return Err(format!("entry `{full}` holds more than the {cap}-byte limit"));
        }
        Ok(Some(buf))
    }

    /// The storage `key` as a flat tensor of `numel` elements of `kind` (read once, then shared).
    fn storage(&mut self, s: &Storage) -> std::result::Result<Tensor, String> {
        if let Some(t) = self.storages.get(&s.key) {
            if t.kind() == s.kind && t.numel() == s.numel {
                return Ok(t.shallow_clone());
            }
            return Err(format!("storage `{}` is used with two different types or sizes", s.key));
        }
        let name = format!("data/{}", s.key);
        let bytes = self.entry(&name)?.ok_or_else(|| {
            format!("storage `{}` is missing from the archive (no entry `{}{name}`)", s.key, self.prefix)
        })?;
        let need = s.numel.checked_mul(s.kind.elt_size_in_bytes()).ok_or("storage size overflows")?;
        if bytes.len() < need {
            return Err(format!(
                "storage `{}` is truncated: {} bytes for {} elements of {:?} ({need} bytes)",
                s.key,
                bytes.len(),
                s.numel,
                s.kind
            ));
        }
        let bytes = &bytes[..need];
        if s.kind == Kind::Bool && bytes.iter().any(|&b| b > 1) {
            return Err(format!("storage `{}`: invalid bool values", s.key));
        }
        let t = Tensor::f_from_data_size(bytes, &[s.numel as i64], s.kind).map_err(|e| e.to_string())?;
        self.storages.insert(s.key.clone(), t.shallow_clone());
        Ok(t)
    }
}

/// A pickle value. Containers live in the VM's heap so that memoised references see later mutations and
/// dropping never recurses. Values no state dict needs (bools, floats, bytes) keep only their type.
#[derive(Clone)]
enum Value {
    None,
    Bool,
    Int(i64),
    Float,
    Str(Rc<str>),
    Bytes,
    Ref(usize),
}

enum Obj {
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(Global),
    /// Anything built from a global outside the allow-list (named `module.name`); never executed.
    Opaque(Rc<str>),
    Storage(Storage),
    Tensor(Tensor),
}

#[derive(Clone, Copy, PartialEq)]
enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildParameter,
    StorageType(Kind),
}

struct Storage {
    key: String,
    kind: Kind,
    numel: usize,
}

/// The allow-list of globals.
fn resolve_global(module: &str, name: &str) -> Option<Global> {
    let kind = |k| Some(Global::StorageType(k));
    match (module, name) {
        ("collections", "OrderedDict") => Some(Global::OrderedDict),
        ("torch._utils", "_rebuild_tensor_v2") => Some(Global::RebuildTensorV2),
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => Some(Global::RebuildParameter),
        ("torch", "FloatStorage") => kind(Kind::Float),
        ("torch", "DoubleStorage") => kind(Kind::Double),
        ("torch", "HalfStorage") => kind(Kind::Half),
        ("torch", "BFloat16Storage") => kind(Kind::BFloat16),
        ("torch", "LongStorage") => kind(Kind::Int64),
        ("torch", "IntStorage") => kind(Kind::Int),
        ("torch", "ShortStorage") => kind(Kind::Int16),
        ("torch", "CharStorage") => kind(Kind::Int8),
        ("torch", "ByteStorage") => kind(Kind::Uint8),
        ("torch", "BoolStorage") => kind(Kind::Bool),
        _ => None,
    }
}

type R<T> = std::result::Result<T, String>;

fn refused(name: &str, key: &str) -> String {
    format!(
        "refusing to load `{name}`{key}: the pickle references a Python object that is not part of a tensor state \
         dict (nothing was executed; only collections.OrderedDict, torch._utils._rebuild_* and torch.*Storage are \
         understood)"
    )
}

struct Vm<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
    heap: Vec<Obj>,
}

impl<'a> Vm<'a> {
    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(|| format!("truncated pickle: {n} bytes wanted at offset {}", self.pos))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn uint(&mut self, n: usize) -> R<u64> {
        Ok(self.take(n)?.iter().rev().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }
    fn line(&mut self) -> R<String> {
        let rest = &self.data[self.pos..];
        let len = rest.iter().position(|&b| b == b'\n').ok_or("truncated pickle: unterminated line")?;
        let s = std::str::from_utf8(&rest[..len]).map_err(|_| "invalid UTF-8 in a global name")?.to_string();
        self.pos += len + 1;
        Ok(s)
    }
    fn string(&mut self, n: usize) -> R<Value> {
        let s = std::str::from_utf8(self.take(n)?).map_err(|_| "invalid UTF-8 in a pickled string")?;
        Ok(Value::Str(s.into()))
    }
    fn alloc(&mut self, obj: Obj) -> Value {
        self.heap.push(obj);
        Value::Ref(self.heap.len() - 1)
    }
    fn pop(&mut self) -> R<Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(format!("pickle stack underflow at offset {}", self.pos));
        }
        self.stack.pop().ok_or_else(|| "pickle stack underflow".into())
    }
    fn pop_mark(&mut self) -> R<Vec<Value>> {
        let m = self.marks.pop().ok_or("pickle MARK missing")?;
        Ok(self.stack.split_off(m.min(self.stack.len())))
    }
    fn top_obj(&mut self) -> R<&mut Obj> {
        let pos = self.pos;
        match self.stack.last() {
            Some(Value::Ref(i)) => self.heap.get_mut(*i),
            _ => None,
        }
        .ok_or_else(|| format!("pickle: expected an object on the stack at offset {pos}"))
    }
    fn obj(&self, v: &Value) -> Option<&Obj> {
        match v {
            Value::Ref(i) => self.heap.get(*i),
            _ => None,
        }
    }
    fn int(&self, v: &Value, what: &str) -> R<i64> {
        match v {
            Value::Int(i) => Ok(*i),
            _ => Err(format!("{what}: expected an integer, got {}", self.type_name(v))),
        }
    }
    fn ints(&self, v: &Value, what: &str) -> R<Vec<i64>> {
        match self.obj(v) {
            Some(Obj::Tuple(items) | Obj::List(items)) => items.iter().map(|x| self.int(x, what)).collect(),
            _ => Err(format!("{what}: expected a tuple of integers, got {}", self.type_name(v))),
        }
    }
    fn type_name(&self, v: &Value) -> &'static str {
        match v {
            Value::None => "None",
            Value::Bool => "bool",
            Value::Int(_) => "int",
            Value::Float => "float",
            Value::Str(_) => "str",
            Value::Bytes => "bytes",
            Value::Ref(i) => match self.heap.get(*i) {
                Some(Obj::Tuple(_)) => "tuple",
                Some(Obj::List(_)) => "list",
                Some(Obj::Dict(_)) => "dict",
                Some(Obj::Global(_)) => "class or function",
                Some(Obj::Storage(_)) => "storage",
                Some(Obj::Tensor(_)) => "tensor",
                Some(Obj::Opaque(_)) => "Python object",
                None => "dangling reference",
            },
        }
    }

    /// Runs the pickle to STOP and returns its value.
    fn run(&mut self, archive: &mut Archive) -> R<Value> {
        loop {
            let at = self.pos;
            let op = self.take(1)?[0];
            let len = |n: u64| usize::try_from(n).map_err(|_| format!("length {n} too large at offset {at}"));
            let push = match op {
                0x80 => match self.uint(1)? {
                    p if p > 5 => return Err(format!("unsupported pickle protocol {p}")),
                    _ => None,
                },
                0x95 => self.take(8).map(|_| None)?, // FRAME: the length is only a read-ahead hint
                b'.' => return self.pop(),
                b'(' => {
                    self.marks.push(self.stack.len());
                    None
                }
                b'}' => Some(self.alloc(Obj::Dict(Vec::new()))),
                b']' => Some(self.alloc(Obj::List(Vec::new()))),
                b')' => Some(self.alloc(Obj::Tuple(Vec::new()))),
                b'N' => Some(Value::None),
                0x88 | 0x89 => Some(Value::Bool),
                b'K' => Some(Value::Int(self.uint(1)? as i64)),
                b'M' => Some(Value::Int(self.uint(2)? as i64)),
                b'J' => Some(Value::Int(i64::from(self.uint(4)? as u32 as i32))),
                0x8a | 0x8b => {
                    let n = self.uint(if op == 0x8a { 1 } else { 4 })?;
                    if n > 8 {
                        return Err(format!("integer of {n} bytes is too large (offset {at})"));
                    }
                    let v = self.uint(n as usize)?;
                    // Sign-extend the little-endian two's complement value.
                    Some(Value::Int(if n == 0 { 0 } else { ((v << (64 - 8 * n)) as i64) >> (64 - 8 * n) }))
                }
                b'G' => self.take(8).map(|_| Some(Value::Float))?,
                b'X' | 0x8c | 0x8d => {
                    let n = self.uint(match op {
                        b'X' => 4,
                        0x8c => 1,
                        _ => 8,
                    })?;
                    Some(self.string(len(n)?)?)
                }
                b'C' | b'B' | 0x8e => {
                    let n = self.uint(match op {
                        b'C' => 1,
                        b'B' => 4,
                        _ => 8,
                    })?;
                    self.take(len(n)?).map(|_| Some(Value::Bytes))?
                }
                b't' => Some(self.pop_mark().map(|items| self.alloc(Obj::Tuple(items)))?),
                0x85..=0x87 => {
                    let mut items = (0x84..op).map(|_| self.pop()).collect::<R<Vec<_>>>()?;
                    items.reverse();
                    Some(self.alloc(Obj::Tuple(items)))
                }
                b'l' => Some(self.pop_mark().map(|items| self.alloc(Obj::List(items)))?),
                b'd' => Some(self.pop_mark().and_then(pairs).map(|items| self.alloc(Obj::Dict(items)))?),
                b'a' | b'e' => {
                    let items = if op == b'a' { vec![self.pop()?] } else { self.pop_mark()? };
                    match self.top_obj()? {
                        Obj::List(l) => l.extend(items),
                        Obj::Opaque(_) => {}
                        _ => return Err(format!("APPEND to a non-list at offset {at}")),
                    }
                    None
                }
                b's' | b'u' => {
                    let items = if op == b's' {
                        let v = self.pop()?;
                        vec![self.pop()?, v]
                    } else {
                        self.pop_mark()?
                    };
                    let items = pairs(items)?;
                    match self.top_obj()? {
                        Obj::Dict(d) => d.extend(items),
                        Obj::Opaque(_) => {}
                        _ => return Err(format!("SETITEM on a non-dict at offset {at}")),
                    }
                    None
                }
                b'q' | b'r' | 0x94 => {
                    let idx = match op {
                        b'q' => self.uint(1)?,
                        b'r' => self.uint(4)?,
                        _ => self.memo.len() as u64,
                    };
                    let v = self.stack.last().cloned().ok_or("memoising from an empty stack")?;
                    self.memo.insert(idx, v);
                    None
                }
                b'h' | b'j' => {
                    let idx = self.uint(if op == b'h' { 1 } else { 4 })?;
                    Some(self.memo.get(&idx).cloned().ok_or_else(|| format!("memo entry {idx} missing"))?)
                }
                b'0' => self.pop().map(|_| None)?,
                b'1' => self.pop_mark().map(|_| None)?,
                b'2' => Some(self.stack.last().cloned().ok_or("DUP on an empty stack")?),
                b'c' | 0x93 => {
                    let (module, name) = if op == b'c' {
                        (self.line()?, self.line()?)
                    } else {
                        match (self.pop()?, self.pop()?) {
                            (Value::Str(name), Value::Str(module)) => (module.to_string(), name.to_string()),
                            _ => return Err("STACK_GLOBAL needs two strings".into()),
                        }
                    };
                    let obj = match resolve_global(&module, &name) {
                        Some(g) => Obj::Global(g),
                        None => Obj::Opaque(format!("{module}.{name}").into()),
                    };
                    Some(self.alloc(obj))
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let s = self.persistent_storage(&pid)?;
                    Some(self.alloc(Obj::Storage(s)))
                }
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    Some(self.call(&func, &args, op == 0x81, archive)?)
                }
                b'b' => {
                    self.pop()?;
                    // Instance state (an OrderedDict's `_metadata`, a Parameter's attributes) carries no weights.
                    match self.top_obj()? {
                        Obj::Dict(_) | Obj::Tensor(_) | Obj::Opaque(_) => None,
                        _ => return Err(format!("BUILD on an unsupported object at offset {at}")),
                    }
                }
                _ => return Err(format!("unsupported or invalid pickle opcode 0x{op:02x} at offset {at}")),
            };
            if let Some(v) = push {
                self.stack.push(v);
            }
        }
    }

    /// `('storage', torch.<Type>Storage, key, location, numel)`.
    fn persistent_storage(&self, pid: &Value) -> R<Storage> {
        let bad = || "invalid persistent id: expected ('storage', type, key, location, numel)".to_string();
        let Some(Obj::Tuple(items)) = self.obj(pid) else { return Err(bad()) };
        let [Value::Str(tag), ty, Value::Str(key), _location, numel] = items.as_slice() else { return Err(bad()) };
        if &**tag != "storage" {
            return Err(bad());
        }
        let kind = match self.obj(ty) {
            Some(Obj::Global(Global::StorageType(kind))) => kind,
            Some(Obj::Opaque(name)) => return Err(format!("storage `{key}`: storage type `{name}` is not supported")),
            _ => return Err(format!("storage `{key}`: the storage type is not a torch.*Storage")),
        };
        let numel =
            usize::try_from(self.int(numel, "storage size")?).map_err(|_| format!("storage `{key}`: negative size"))?;
        Ok(Storage { key: key.to_string(), kind: *kind, numel })
    }

    fn call(&mut self, func: &Value, args: &Value, newobj: bool, archive: &mut Archive) -> R<Value> {
        let g = match self.obj(func) {
            Some(Obj::Global(g)) => *g,
            Some(Obj::Opaque(name)) => return Ok(self.alloc(Obj::Opaque(name.clone()))),
            _ => return Err(format!("pickle calls a {}, not a class or function", self.type_name(func))),
        };
        let Some(Obj::Tuple(args)) = self.obj(args) else { return Err("call arguments are not a tuple".into()) };
        let args = args.clone();
        match g {
            Global::OrderedDict if args.is_empty() => Ok(self.alloc(Obj::Dict(Vec::new()))),
            Global::RebuildTensorV2 if !newobj && (6..=7).contains(&args.len()) => {
                let Some(Obj::Storage(s)) = self.obj(&args[0]) else {
                    return Err("_rebuild_tensor_v2: first argument is not a storage".into());
                };
                let s = Storage { key: s.key.clone(), kind: s.kind, numel: s.numel };
                let offset = self.int(&args[1], "tensor offset")?;
                let size = self.ints(&args[2], "tensor size")?;
                let stride = self.ints(&args[3], "tensor stride")?;
                let storage = archive.storage(&s)?;
                let t = strided::view(&storage, s.numel, offset, &size, &stride)
                    .map_err(|e| format!("storage `{}`: {e}", s.key))?;
                Ok(self.alloc(Obj::Tensor(t)))
            }
            Global::RebuildParameter if !newobj && (3..=4).contains(&args.len()) => match self.obj(&args[0]) {
                Some(Obj::Tensor(_)) => Ok(args[0].clone()),
                _ => Err("_rebuild_parameter: first argument is not a tensor".into()),
            },
            _ => Err(format!("unsupported call with {} arguments in the pickle", args.len())),
        }
    }

    /// Finds the state dict in the unpickled value (see the module docs).
    fn state_dict(&self, top: &Value, depth: usize) -> R<Vec<(String, Tensor)>> {
        let items = match self.obj(top) {
            Some(Obj::Dict(items)) => items,
            Some(Obj::Opaque(name)) => return Err(refused(name, "")),
            _ => return Err(format!("the checkpoint holds a {}, not a state dict", self.type_name(top))),
        };
        let is_tensor = |v: &Value| matches!(self.obj(v), Some(Obj::Tensor(_)));
        let key = |k: &Value| match k {
            Value::Str(s) => Some(s.to_string()),
            _ => None,
        };
        if !items.is_empty() && items.iter().all(|(_, v)| is_tensor(v)) {
            let mut seen = HashSet::new();
            let mut out = Vec::with_capacity(items.len());
            for (k, v) in items {
                let name =
                    key(k).ok_or_else(|| format!("a state dict key is a {}, not a string", self.type_name(k)))?;
                if !seen.insert(name.clone()) {
                    return Err(format!("duplicate key `{name}`"));
                }
                if let Some(Obj::Tensor(t)) = self.obj(v) {
                    out.push((name, t.shallow_clone()));
                }
            }
            return Ok(out);
        }
        if depth < 3 {
            for w in WRAPPER_KEYS {
                let inner = items
                    .iter()
                    .find(|(k, v)| key(k).as_deref() == Some(*w) && matches!(self.obj(v), Some(Obj::Dict(_))));
                if let Some((_, v)) = inner {
                    return self.state_dict(v, depth + 1).map_err(|e| format!("under `{w}`: {e}"));
                }
            }
        }
        for (k, v) in items {
            if let Some(Obj::Opaque(name)) = self.obj(v) {
                return Err(refused(name, &format!(" (entry `{}`)", key(k).unwrap_or_default())));
            }
        }
        let keys: Vec<String> = items
            .iter()
            .take(12)
            .map(|(k, v)| format!("{} ({})", key(k).unwrap_or_else(|| "?".into()), self.type_name(v)))
            .collect();
        Err(format!(
            "no state dict found: a dict with {} entries [{}{}] that is neither all tensors nor wraps one under {}",
            items.len(),
            keys.join(", "),
            if items.len() > keys.len() { ", ..." } else { "" },
            WRAPPER_KEYS.join("/")
        ))
    }
}

fn pairs(items: Vec<Value>) -> R<Vec<(Value, Value)>> {
    if !items.len().is_multiple_of(2) {
        return Err("odd number of items for a dict".into());
    }
    let mut it = items.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}
