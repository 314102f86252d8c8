//! `diagnostic_msgs` (ros2/common_interfaces, Humble/Jazzy): `DiagnosticArray`, `DiagnosticStatus`, `KeyValue`,
//! what the node publishes on `/diagnostics` (one status per camera), as `diagnostic_updater` does.

use super::{read_seq, write_seq, CdrReader, CdrWriter, Header, MessageError, RosMessage};

/// `diagnostic_msgs/msg/KeyValue`: `string key`, `string value`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

impl KeyValue {
    pub fn new(key: impl Into<String>, value: impl ToString) -> Self {
        Self { key: key.into(), value: value.to_string() }
    }
}

impl RosMessage for KeyValue {
    const TYPE_NAME: &'static str = "diagnostic_msgs/msg/KeyValue";
    fn write_fields(&self, w: &mut CdrWriter) {
        w.string(&self.key);
        w.string(&self.value);
    }
    fn read_fields(r: &mut CdrReader<'_>) -> Result<Self, MessageError> {
        Ok(Self { key: r.string("KeyValue.key")?.to_string(), value: r.string("KeyValue.value")?.to_string() })
    }
}

/// `diagnostic_msgs/msg/DiagnosticStatus`: `byte level` (OK 0, WARN 1, ERROR 2, STALE 3), `string name`,
/// `string message`, `string hardware_id`, `KeyValue[] values`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiagnosticStatus {
    pub level: u8,
    pub name: String,
    pub message: String,
    pub hardware_id: String,
    pub values: Vec<KeyValue>,
}

impl DiagnosticStatus {
    pub const OK: u8 = 0;
    pub const WARN: u8 = 1;
    pub const ERROR: u8 = 2;
    pub const STALE: u8 = 3;

    /// The value of `key`, if present.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.values.iter().find(|kv| kv.key == key).map(|kv| kv.value.as_str())
    }
}

impl RosMessage for DiagnosticStatus {
    const TYPE_NAME: &'static str = "diagnostic_msgs/msg/DiagnosticStatus";
    fn write_fields(&self, w: &mut CdrWriter) {
        w.u8(self.level);
        w.string(&self.name);
        w.string(&self.message);
        w.string(&self.hardware_id);
        write_seq(w, &self.values);
    }
    fn read_fields(r: &mut CdrReader<'_>) -> Result<Self, MessageError> {
        Ok(Self {
            level: r.u8("DiagnosticStatus.level")?,
            name: r.string("DiagnosticStatus.name")?.to_string(),
            message: r.string("DiagnosticStatus.message")?.to_string(),
            hardware_id: r.string("DiagnosticStatus.hardware_id")?.to_string(),
            values: read_seq(r, "DiagnosticStatus.values")?,
        })
    }
}

/// `diagnostic_msgs/msg/DiagnosticArray`: `std_msgs/Header header`, `DiagnosticStatus[] status`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DiagnosticArray {
    pub header: Header,
    pub status: Vec<DiagnosticStatus>,
}

impl RosMessage for DiagnosticArray {
    const TYPE_NAME: &'static str = "diagnostic_msgs/msg/DiagnosticArray";
    fn write_fields(&self, w: &mut CdrWriter) {
        self.header.write_fields(w);
        write_seq(w, &self.status);
    }
    fn read_fields(r: &mut CdrReader<'_>) -> Result<Self, MessageError> {
        Ok(Self { header: Header::read_fields(r)?, status: read_seq(r, "DiagnosticArray.status")? })
    }
    fn cdr_size_hint(&self) -> usize {
        let kv = |s: &DiagnosticStatus| s.values.iter().map(|v| 16 + v.key.len() + v.value.len()).sum::<usize>();
        32 + self.header.frame_id.len()
            + self
                .status
                .iter()
                .map(|s| 32 + s.name.len() + s.message.len() + s.hardware_id.len() + kv(s))
                .sum::<usize>()
    }
}
