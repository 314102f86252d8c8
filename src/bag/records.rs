//! MCAP records read by hand, bounded and checked: the record framing (opcode, length), chunks (decompressed
//! with their output capped at the declared size, which is capped itself; the uncompressed CRC checked when
//! non-zero), the summary section (its CRC checked when non-zero) and the message indexes that tell how many
//! messages a chunk held. Nothing here trusts a length for allocation beyond the caller's limit, and nothing
//! panics on any input: every failure is a message for the caller to place at a file offset.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::os::unix::fs::FileExt;

use mcap::records::{op, ChunkIndex, MessageHeader, Record};

/// Opcode and length in front of every record.
pub(crate) const RECORD_HEADER: u64 = 9;
/// Footer record (opcode, length, summary start, summary offset start, CRC) plus the closing magic.
const FOOTER_TAIL: u64 = RECORD_HEADER + 20 + 8;
/// Message index records read after one chunk, at most (one per channel).
const MAX_INDEX_RECORDS: usize = 1 << 16;

/// Where the bytes of a bag come from: a file (read at offsets) or memory (fuzzing, tests).
pub(crate) enum Source<'a> {
    File(File),
    Bytes(&'a [u8]),
}

impl<'a> Source<'a> {
    /// Reads exactly `buf.len()` bytes at `offset`.
    pub(crate) fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        match self {
            Source::File(f) => f.read_exact_at(buf, offset),
            Source::Bytes(b) => {
                let start = usize::try_from(offset).map_err(|_| eof())?;
                let slice = b.get(start..start.saturating_add(buf.len())).ok_or_else(eof)?;
                buf.copy_from_slice(slice);
                Ok(())
            }
        }
    }

    /// A second handle on the same bytes.
    pub(crate) fn duplicate(&self) -> std::io::Result<Source<'a>> {
        Ok(match self {
            Source::File(f) => Source::File(f.try_clone()?),
            Source::Bytes(b) => Source::Bytes(b),
        })
    }

    pub(crate) fn read_vec(&self, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; usize::try_from(len).map_err(|_| eof())?];
        self.read_at(offset, &mut buf)?;
        Ok(buf)
    }
}

fn eof() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "read past the end")
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8).and_then(|s| s.try_into().ok()).map(u64::from_le_bytes)
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4).and_then(|s| s.try_into().ok()).map(u32::from_le_bytes)
}

/// Opcode and body length of the record whose header is `h`.
pub(crate) fn record_header(h: &[u8; RECORD_HEADER as usize]) -> (u8, u64) {
    (h[0], u64::from_le_bytes([h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]]))
}

/// A channel as records declare it.
#[derive(Debug, Clone)]
pub(crate) struct ChannelRecord {
    pub id: u16,
    pub schema_id: u16,
    pub topic: String,
    pub encoding: String,
}

/// Schemas and channels declared in some records.
#[derive(Debug, Default, Clone)]
pub(crate) struct Declarations {
    pub schemas: BTreeMap<u16, String>,
    pub channels: Vec<ChannelRecord>,
}

impl Declarations {
    /// Registers a schema or channel record; other records are ignored. Err: the record does not parse.
    fn take(&mut self, opcode: u8, body: &[u8]) -> Result<(), String> {
        if opcode != op::SCHEMA && opcode != op::CHANNEL {
            return Ok(());
        }
        match mcap::parse_record(opcode, body).map_err(|e| e.to_string())? {
            Record::Schema { header, .. } => {
                self.schemas.insert(header.id, header.name);
            }
            Record::Channel(c) => self.channels.push(ChannelRecord {
                id: c.id,
                schema_id: c.schema_id,
                topic: c.topic,
                encoding: c.message_encoding,
            }),
            _ => {}
        }
        Ok(())
    }
}

/// Parses a schema or channel record at the top level of a file.
pub(crate) fn declaration(opcode: u8, body: &[u8]) -> Result<Declarations, String> {
    let mut d = Declarations::default();
    d.take(opcode, body)?;
    Ok(d)
}

/// Parses a message record: its header and where its data lies in `body`.
pub(crate) fn message(body: &[u8]) -> Result<(MessageHeader, Range<usize>), String> {
    match mcap::parse_record(op::MESSAGE, body).map_err(|e| e.to_string())? {
        Record::Message { header, data } => Ok((header, body.len() - data.len()..body.len())),
        _ => Err("not a message record".into()),
    }
}

/// A decoded chunk: its records' declarations and messages (data ranges into `data`).
pub(crate) struct Chunk {
    pub declarations: Declarations,
    pub messages: Vec<(MessageHeader, Range<usize>)>,
    pub data: Vec<u8>,
}

/// Decodes the body of a chunk record: decompresses (output capped at the declared size, itself capped at
/// `limit`), checks the uncompressed CRC when non-zero, and splits the records. Err: why the chunk is corrupt.
pub(crate) fn decode_chunk(body: &[u8], limit: u64) -> Result<Chunk, String> {
    let (header, compressed) = match mcap::parse_record(op::CHUNK, body) {
        Ok(Record::Chunk { header, data }) => (header, data),
        Ok(_) => return Err("not a chunk record".into()),
        Err(e) => return Err(format!("bad chunk header: {e}")),
    };
    let size = header.uncompressed_size;
    if size > limit {
        return Err(format!("declared uncompressed size {size} is over the {limit}-byte limit"));
    }
    let mut data = Vec::with_capacity(size.min(16 << 20) as usize);
    let read = match header.compression.as_str() {
        "" => {
            data.extend_from_slice(&compressed);
            Ok(compressed.len())
        }
        "zstd" => zstd::stream::read::Decoder::with_buffer(&compressed[..])
            .and_then(|d| d.take(size + 1).read_to_end(&mut data)),
        "lz4" => lz4::Decoder::new(&compressed[..]).and_then(|d| d.take(size + 1).read_to_end(&mut data)),
        other => return Err(format!("unknown compression `{}`", shorten(other))),
    };
    if let Err(e) = read {
        return Err(format!("{} decompression failed: {e}", header.compression));
    }
    if data.len() as u64 != size {
        return Err(format!("decompressed to {} bytes, the header says {size}", data.len()));
    }
    if header.uncompressed_crc != 0 {
        let computed = crc32fast::hash(&data);
        if computed != header.uncompressed_crc {
            return Err(format!("CRC mismatch: stored {:08x}, computed {computed:08x}", header.uncompressed_crc));
        }
    }
    let mut declarations = Declarations::default();
    let mut messages = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        let at = |what: &str| format!("record at chunk byte {pos}: {what}");
        let Some(h) = data.get(pos..pos + RECORD_HEADER as usize) else {
            return Err(at("record header cut off"));
        };
        let opcode = h[0];
        let len = u64_at(h, 1).unwrap_or(u64::MAX);
        let start = pos + RECORD_HEADER as usize;
        let end = usize::try_from(len).ok().and_then(|l| start.checked_add(l)).filter(|&e| e <= data.len());
        let Some(end) = end else {
            return Err(at(&format!("length {len} runs past the chunk's end")));
        };
        let body = &data[start..end];
        if opcode == op::MESSAGE {
            let (header, range) = message(body).map_err(|e| at(&e))?;
            messages.push((header, start + range.start..start + range.end));
        } else {
            declarations.take(opcode, body).map_err(|e| at(&e))?;
        }
        pos = end;
    }
    Ok(Chunk { declarations, messages, data })
}

/// Messages per channel that the message index records starting at `offset` list (those written right after a
/// chunk), read up to `end`. Used to count what a corrupt chunk held; empty when there are none.
pub(crate) fn count_indexed(src: &Source<'_>, mut offset: u64, end: u64) -> BTreeMap<u16, u64> {
    let mut counts = BTreeMap::new();
    for _ in 0..MAX_INDEX_RECORDS {
        let mut h = [0u8; RECORD_HEADER as usize];
        if offset.saturating_add(RECORD_HEADER) > end || src.read_at(offset, &mut h).is_err() {
            break;
        }
        let (opcode, len) = record_header(&h);
        // A hostile length must not overflow: the record's end is computed checked.
        let next = len.checked_add(RECORD_HEADER).and_then(|n| offset.checked_add(n)).filter(|&n| n <= end);
        let Some(next) = next.filter(|_| opcode == op::MESSAGE_INDEX && len >= 6) else {
            break;
        };
        let mut head = [0u8; 6];
        if src.read_at(offset + RECORD_HEADER, &mut head).is_err() {
            break;
        }
        let channel = u16::from_le_bytes([head[0], head[1]]);
        let bytes = u32::from_le_bytes([head[2], head[3], head[4], head[5]]) as u64;
        *counts.entry(channel).or_insert(0) += bytes.min(len - 6) / 16;
        offset = next;
    }
    counts
}

/// What a file's summary section says.
#[derive(Debug, Default)]
pub(crate) struct SummaryInfo {
    pub declarations: Declarations,
    pub chunks: Vec<ChunkIndex>,
    /// Messages per channel (the statistics record); None without one.
    pub counts: Option<BTreeMap<u16, u64>>,
    pub message_count: Option<u64>,
    /// Offset of the DataEnd record and its data section CRC (0: not computed by the writer).
    pub data_end: Option<(u64, u32)>,
}

/// Reads the footer and the summary section. Ok(None): the file has no summary (or no complete footer: a file
/// cut off, read linearly instead). Err: a summary that is there but damaged (bad CRC, a record that does not
/// parse), with the offset.
pub(crate) fn read_summary(src: &Source<'_>, len: u64, limit: u64) -> Result<Option<SummaryInfo>, (u64, String)> {
    if len < 8 + FOOTER_TAIL {
        return Ok(None);
    }
    let footer_at = len - FOOTER_TAIL;
    let mut tail = [0u8; FOOTER_TAIL as usize];
    if src.read_at(footer_at, &mut tail).is_err() || tail[29..] != mcap::MAGIC[..] {
        return Ok(None);
    }
    let (opcode, flen) = (tail[0], u64_at(&tail, 1).unwrap_or(0));
    let summary_start = u64_at(&tail, 9).unwrap_or(0);
    let stored_crc = u32_at(&tail, 25).unwrap_or(0);
    if opcode != op::FOOTER || flen != 20 {
        return Err((footer_at, "the footer record is malformed".into()));
    }
    if summary_start == 0 {
        return Ok(None);
    }
    if summary_start < 8 || summary_start > footer_at {
        return Err((footer_at, format!("the footer's summary start {summary_start} is outside the file")));
    }
    if footer_at - summary_start > limit {
        return Err((summary_start, format!("a summary of {} bytes is over the limit", footer_at - summary_start)));
    }
    // The summary CRC covers the summary section and the footer up to its CRC field.
    let section =
        src.read_vec(summary_start, footer_at + 25 - summary_start).map_err(|e| (summary_start, e.to_string()))?;
    if stored_crc != 0 {
        let computed = crc32fast::hash(&section);
        if computed != stored_crc {
            return Err((
                summary_start,
                format!("summary CRC mismatch: stored {stored_crc:08x}, computed {computed:08x}"),
            ));
        }
    }
    let mut info = SummaryInfo::default();
    let records = &section[..(footer_at - summary_start) as usize];
    let mut pos = 0usize;
    while pos < records.len() {
        let at = summary_start + pos as u64;
        let h = records.get(pos..pos + RECORD_HEADER as usize).ok_or((at, "record header cut off".to_string()))?;
        let opcode = h[0];
        let rlen = u64_at(h, 1).unwrap_or(u64::MAX);
        let start = pos + RECORD_HEADER as usize;
        let end = usize::try_from(rlen).ok().and_then(|l| start.checked_add(l)).filter(|&e| e <= records.len());
        let end = end.ok_or((at, format!("record length {rlen} runs past the summary")))?;
        let body = &records[start..end];
        let bad = |e: mcap::McapError| (at, e.to_string());
        match opcode {
            op::SCHEMA | op::CHANNEL => info.declarations.take(opcode, body).map_err(|e| (at, e))?,
            op::CHUNK_INDEX => {
                if let Record::ChunkIndex(c) = mcap::parse_record(opcode, body).map_err(bad)? {
                    info.chunks.push(c);
                }
            }
            op::STATISTICS => {
                if let Record::Statistics(s) = mcap::parse_record(opcode, body).map_err(bad)? {
                    info.message_count = Some(s.message_count);
                    info.counts = Some(s.channel_message_counts);
                }
            }
            _ => {}
        }
        pos = end;
    }
    // The DataEnd record sits right before the summary.
    let data_end_at = summary_start.checked_sub(RECORD_HEADER + 4);
    if let Some(at) = data_end_at {
        let mut d = [0u8; 13];
        if src.read_at(at, &mut d).is_ok() && d[0] == op::DATA_END && u64_at(&d, 1) == Some(4) {
            info.data_end = Some((at, u32_at(&d, 9).unwrap_or(0)));
        }
    }
    Ok(Some(info))
}

/// CRC-32 of the first `end` bytes of the source, read in blocks.
pub(crate) fn crc_of_prefix(src: &Source<'_>, end: u64) -> std::io::Result<u32> {
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < end {
        let n = (end - at).min(buf.len() as u64) as usize;
        src.read_at(at, &mut buf[..n])?;
        hasher.update(&buf[..n]);
        at += n as u64;
    }
    Ok(hasher.finalize())
}

/// A value echoed in an error, at most 40 characters.
pub(crate) fn shorten(s: &str) -> String {
    crate::error::shorten(s, 40)
}
