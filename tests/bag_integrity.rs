//! Damaged bags: a flipped bit inside a compressed chunk (the chunk's frames skipped and counted with its byte
//! offset, the other chunks processed, exit 2), a bag cut in the middle (processed up to the damage, "truncated at
//! offset N"), a data section CRC mismatch, and a bag cut near its end (the statistics and `--stats-json` still
//! written). Each named the file and the offset; none passes silently.

#[path = "common/bags.rs"]
mod bags;
mod common;

use bags::{chunk_payload, chunks, dinoseg_run, params, stats, topic_counts, write_bag, BagSpec, TOPIC};
use dinoseg::bag::{read_all_from_bytes, BagError, BagReader};
use std::path::Path;

const SEMANTIC: &str = "/camera/dinoseg/semantic";

fn run(dir: &Path, input: &Path) -> (std::process::Output, serde_json::Value, String) {
    let p = params(dir);
    let (out, json) = (dir.join("out.mcap"), dir.join("stats.json"));
    let o = dinoseg_run(&[("--params", &p), ("--input", input), ("--output", &out), ("--stats-json", &json)]);
    let text = format!("{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let s = stats(&json);
    (o, s, text)
}

#[test]
fn every_flipped_byte_inside_a_compressed_chunk_is_caught_or_harmless() {
    let dir = common::temp_dir("integrity-flip-lib");
    let path = dir.join("in.mcap");
    let bytes = write_bag(&path, BagSpec::default());
    let good = read_all_from_bytes(&bytes).expect("good bag");
    assert!(good.damage.is_empty(), "{:?}", good.damage);
    assert_eq!(good.messages.len(), 6);
    let chunk_list = chunks(&bytes);
    assert_eq!(chunk_list.len(), 7, "the schema and channel, then one frame per chunk");
    let (offset, _) = chunk_list[2];
    let (start, size) = chunk_payload(&bytes, offset);
    let mut caught = 0;
    for at in start..start + size {
        let mut bad = bytes.clone();
        bad[at] ^= 0x10;
        let read = read_all_from_bytes(&bad).expect("still MCAP");
        let ok: Vec<_> = read.messages.iter().filter(|m| good.messages.contains(m)).collect();
        assert_eq!(ok.len(), read.messages.len(), "byte {at}: damaged pixels passed as a good frame");
        // Every flip changes the data section: its CRC always tells; the chunk's own check says which frames.
        match read.damage.as_slice() {
            [BagError::DataCrc { .. }] => assert_eq!(read.messages.len(), 6, "byte {at}: a frame vanished silently"),
            [BagError::CorruptChunk { offset: o, skipped, .. }, BagError::DataCrc { .. }] => {
                caught += 1;
                assert_eq!(*o as usize, offset, "byte {at}");
                assert_eq!(skipped, &[(TOPIC.to_string(), 1)], "byte {at}");
                assert_eq!(read.messages.len(), 5, "byte {at}: the other chunks are read");
            }
            other => panic!("byte {at}: {other:?}"),
        }
    }
    assert!(caught * 10 >= size * 9, "{caught} of {size} flips caught");
    // The file reader says the same, with the file name and the offset in the message.
    let mut bad = bytes.clone();
    bad[start + size / 2] ^= 0x01;
    std::fs::write(&path, &bad).expect("write");
    let bag = BagReader::open(&path).expect("open");
    let items: Vec<_> = bag.messages(&[TOPIC]).expect("messages").collect();
    let errors: Vec<String> = items.iter().filter_map(|r| r.as_ref().err()).map(|e| e.to_string()).collect();
    assert_eq!(items.len(), 7, "{errors:?}");
    assert!(errors.len() == 2 && errors[0].contains("in.mcap") && errors[0].contains(&format!("offset {offset}")));
    assert!(errors[1].contains("data section CRC mismatch"), "{errors:?}");
}

#[test]
fn a_flipped_bit_in_a_compressed_chunk_skips_its_frames_names_the_offset_and_exits_2() {
    let dir = common::temp_dir("integrity-flip-run");
    let input = dir.join("flipped.mcap");
    let mut bytes = write_bag(&input, BagSpec::default());
    let (offset, _) = chunks(&bytes)[2];
    let (start, size) = chunk_payload(&bytes, offset);
    bytes[start + size / 2] ^= 0x04;
    std::fs::write(&input, &bytes).expect("write");
    let (o, s, text) = run(&dir, &input);
    assert_eq!(o.status.code(), Some(2), "{text}");
    assert!(text.contains(&format!("flipped.mcap: corrupt chunk at offset {offset}")), "{text}");
    assert_eq!(s["corrupt_chunks"], 1, "{s}");
    assert_eq!(s["topics"][TOPIC]["damaged"], 1, "{s}");
    assert_eq!(s["topics"][TOPIC]["frames_out"], 5, "{s}");
    assert_eq!(s["exit_code"], 2);
    assert_eq!(topic_counts(&dir.join("out.mcap")).get(SEMANTIC), Some(&5));
}

#[test]
fn a_truncated_bag_is_processed_up_to_the_damage() {
    let dir = common::temp_dir("integrity-cut");
    let input = dir.join("cut.mcap");
    let bytes = write_bag(&input, BagSpec::default());
    // Cut inside the fourth frame's chunk (the first chunk holds the schema and channel).
    let (offset, _) = chunks(&bytes)[4];
    std::fs::write(&input, &bytes[..offset + 30]).expect("write");
    let (o, s, text) = run(&dir, &input);
    assert_eq!(o.status.code(), Some(2), "{text}");
    assert!(text.contains(&format!("cut.mcap: truncated at offset {offset}")), "{text}");
    assert_eq!(s["topics"][TOPIC]["frames_out"], 3, "{s}");
    assert_eq!(topic_counts(&dir.join("out.mcap")).get(SEMANTIC), Some(&3));
    // Cut inside the first chunk: nothing readable, and the error says why (not "no such topic").
    let (first, _) = chunks(&bytes)[0];
    std::fs::write(&input, &bytes[..first + 30]).expect("write");
    let (o, s, text) = run(&dir, &input);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains(&format!("truncated at offset {first}")), "{text}");
    assert!(s["error"].as_str().is_some_and(|e| e.contains("truncated at offset")), "{s}");
}

#[test]
fn a_data_section_crc_mismatch_is_reported() {
    let dir = common::temp_dir("integrity-data-crc");
    let input = dir.join("datacrc.mcap");
    // No chunk CRCs, no compression: only the data section CRC can see a changed pixel.
    let spec = BagSpec { compression: None, chunk_crcs: false, ..BagSpec::default() };
    let mut bytes = write_bag(&input, spec);
    let (offset, len) = chunks(&bytes)[1];
    bytes[offset + 9 + len - 1] ^= 0x01; // the chunk's last byte: a pixel of its frame
    std::fs::write(&input, &bytes).expect("write");
    let read = read_all_from_bytes(&bytes).expect("MCAP");
    assert!(matches!(read.damage.as_slice(), [BagError::DataCrc { .. }]), "{:?}", read.damage);
    let (o, s, text) = run(&dir, &input);
    assert_eq!(o.status.code(), Some(2), "{text}");
    assert!(text.contains("datacrc.mcap: data section CRC mismatch (DataEnd record at offset"), "{text}");
    assert_eq!(s["topics"][TOPIC]["frames_out"], 6, "{s}");
}

#[test]
fn a_bag_cut_near_its_end_still_writes_the_statistics() {
    let dir = common::temp_dir("integrity-cut-end");
    let input = dir.join("end.mcap");
    let bytes = write_bag(&input, BagSpec::default());
    std::fs::write(&input, &bytes[..bytes.len() - 10]).expect("write");
    let (o, s, text) = run(&dir, &input);
    assert_eq!(o.status.code(), Some(2), "{text}");
    assert!(text.contains("end.mcap: truncated at offset"), "{text}");
    assert_eq!(s["topics"][TOPIC]["frames_out"], 6, "{s}");
    assert!(s["damage"][0].as_str().is_some_and(|d| d.contains("truncated at offset")), "{s}");
    assert_eq!(topic_counts(&dir.join("out.mcap")).get(SEMANTIC), Some(&6));
}

/// xorshift64*: a seeded generator, so a failure reproduces.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

#[test]
fn random_mutations_never_panic_and_stay_bounded() {
    let dir = common::temp_dir("integrity-mutate");
    let mut seeds = Vec::new();
    for (i, compression) in [Some(mcap::Compression::Zstd), Some(mcap::Compression::Lz4), None].into_iter().enumerate()
    {
        let spec = BagSpec {
            frames: 4,
            width: 8,
            height: 6,
            compression,
            chunk_size: 1 + i as u64 * 300,
            ..BagSpec::default()
        };
        seeds.push(write_bag(&dir.join(format!("seed{i}.mcap")), spec));
    }
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let start = std::time::Instant::now();
    for round in 0..3000 {
        let mut bytes = seeds[round % seeds.len()].clone();
        for _ in 0..1 + next(&mut state) % 4 {
            let at = (next(&mut state) % bytes.len() as u64) as usize;
            match next(&mut state) % 4 {
                0 => bytes[at] ^= 1 << (next(&mut state) % 8),
                1 => bytes[at] = next(&mut state) as u8,
                2 => bytes.truncate(at.max(8)),
                _ => {
                    // A length field set to something huge.
                    let end = (at + 8).min(bytes.len());
                    bytes[at..end].iter_mut().for_each(|b| *b = 0xff);
                }
            }
        }
        if let Ok(contents) = read_all_from_bytes(&bytes) {
            let total: usize = contents.messages.iter().map(|m| m.data.len()).sum();
            assert!(total as u64 <= dinoseg::bag::BYTES_LIMIT, "round {round}");
        }
    }
    assert!(start.elapsed().as_secs() < 20, "3000 mutated bags took {:?}", start.elapsed());
}

#[test]
fn a_damaged_summary_is_named_and_the_bag_read_linearly() {
    let dir = common::temp_dir("integrity-summary");
    let path = dir.join("summary.mcap");
    let mut bytes = write_bag(&path, BagSpec::default());
    let footer = bytes.len() - 37;
    let summary_start = u64::from_le_bytes(bytes[footer + 9..footer + 17].try_into().expect("8 bytes")) as usize;
    bytes[summary_start + 12] ^= 0x20;
    std::fs::write(&path, &bytes).expect("write");
    let bag = BagReader::open(&path).expect("open");
    let damage = bag.summary_damage();
    assert_eq!(damage.len(), 1, "{damage:?}");
    assert!(damage[0].contains(&format!("summary.mcap: summary at offset {summary_start} unusable")), "{damage:?}");
    assert!(damage[0].contains("summary CRC mismatch"), "{damage:?}");
    let read: Vec<_> = bag.messages(&[TOPIC]).expect("messages").collect();
    assert_eq!(read.len(), 6);
    assert!(read.iter().all(|r| r.is_ok()));
}
