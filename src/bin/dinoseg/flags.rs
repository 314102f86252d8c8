//! Range checks of the command line's numeric flags, as clap value parsers: a value out of range (zero, negative,
//! NaN, infinite, huge) is refused by clap before anything runs, with the flag, the value and the range named,
//! and exit status 2 (clap's usage error), never a panic or a hang.

use clap::builder::{RangedI64ValueParser, RangedU64ValueParser};

/// Largest frame side the tools generate or post-process to (`--size`, `--height`, `--width`, `--postprocess`).
pub const MAX_SIDE: u32 = 8192;

/// An unsigned count in `lo..=hi` (`usize` flags).
pub fn count(lo: u64, hi: u64) -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::<usize>::new().range(lo..=hi)
}

/// A `u64` in `lo..=hi`.
pub fn count_u64(lo: u64, hi: u64) -> RangedU64ValueParser<u64> {
    RangedU64ValueParser::<u64>::new().range(lo..=hi)
}

/// A `u32` in `lo..=hi`.
pub fn count_u32(lo: u64, hi: u64) -> RangedU64ValueParser<u32> {
    RangedU64ValueParser::<u32>::new().range(lo..=hi)
}

/// An `i64` in `lo..=hi`.
pub fn int_i64(lo: i64, hi: i64) -> RangedI64ValueParser<i64> {
    RangedI64ValueParser::<i64>::new().range(lo..=hi)
}

/// An `i32` in `lo..=hi`.
pub fn int_i32(lo: i64, hi: i64) -> RangedI64ValueParser<i32> {
    RangedI64ValueParser::<i32>::new().range(lo..=hi)
}

/// Shortens what the user typed for an error message.
fn shown(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("{}...", s.chars().take(40).collect::<String>())
    } else {
        s.to_string()
    }
}

/// A finite number in `(0, hi]`.
fn positive_max(s: &str, hi: f64) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|_| format!("`{}` is not a number", shown(s)))?;
    if !v.is_finite() || v <= 0.0 || v > hi {
        return Err(format!("{v} is not in (0, {hi}]: a finite number above 0 and at most {hi}"));
    }
    Ok(v)
}

/// Frames per second of a simulated camera: `(0, 1000]`.
pub fn rate_hz(s: &str) -> Result<f64, String> {
    positive_max(s, 1000.0)
}

/// A duration in seconds: `(0, 86400]`.
pub fn seconds(s: &str) -> Result<f64, String> {
    positive_max(s, 86_400.0)
}

/// A frame size `HxW`, each side in `1..=MAX_SIDE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub height: u32,
    pub width: u32,
}

/// Parses `HxW` (e.g. `480x640`).
pub fn size_hw(s: &str) -> Result<Size, String> {
    let (h, w) = s.split_once(['x', 'X']).ok_or_else(|| format!("`{}` is not HxW (e.g. 480x640)", shown(s)))?;
    let side = |v: &str, what: &str| -> Result<u32, String> {
        let n: u64 = v.trim().parse().map_err(|_| format!("{what} `{}` is not a whole number", shown(v)))?;
        if n == 0 || n > u64::from(MAX_SIDE) {
            return Err(format!("{what} {n} is not in 1..={MAX_SIDE}"));
        }
        Ok(n as u32)
    };
    Ok(Size { height: side(h, "height")?, width: side(w, "width")? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_refuse_zero_nan_inf_negative_and_huge() {
        for bad in ["0", "-1", "nan", "NaN", "inf", "-inf", "1e300", "1001", "x", ""] {
            assert!(rate_hz(bad).is_err(), "{bad}");
        }
        assert_eq!(rate_hz("30").ok(), Some(30.0));
        assert_eq!(seconds("0.5").ok(), Some(0.5));
        assert!(seconds("86401").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(size_hw("480x640").ok(), Some(Size { height: 480, width: 640 }));
        for bad in ["0x640", "480x0", "480", "x", "99999x1", "-1x5", "1.5x2", "480x640x3"] {
            assert!(size_hw(bad).is_err(), "{bad}");
        }
        let e = size_hw(&"9".repeat(100)).unwrap_err();
        assert!(e.len() < 120, "{e}");
    }
}
