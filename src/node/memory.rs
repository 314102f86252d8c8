//! The in-memory transport: what would be published, kept in memory with the time it was published.

use super::clock::Clock;
use super::core::Transport;
use crate::topics::{Output, Stream};
use std::sync::Arc;

/// One published message.
#[derive(Debug, Clone)]
pub struct Published {
    pub camera: usize,
    pub output: Output,
    /// The head of a head's own stream; None for the main results.
    pub head: Option<String>,
    pub cdr: Vec<u8>,
    /// Clock time of the publish call.
    pub at_ns: u64,
}

/// Collects published messages, diagnostics and warnings; [`MemoryTransport::drain`] hands them over.
pub struct MemoryTransport {
    clock: Arc<dyn Clock>,
    pub messages: Vec<Published>,
    /// `DiagnosticArray` CDR buffers.
    pub diagnostics: Vec<Vec<u8>>,
    pub warnings: Vec<String>,
    /// Make `publish` fail (to test publish errors).
    pub fail_publish: bool,
}

impl MemoryTransport {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        MemoryTransport {
            clock,
            messages: Vec::new(),
            diagnostics: Vec::new(),
            warnings: Vec::new(),
            fail_publish: false,
        }
    }

    /// Takes the messages published so far.
    pub fn drain(&mut self) -> Vec<Published> {
        std::mem::take(&mut self.messages)
    }
}

impl Transport for MemoryTransport {
    fn publish(&mut self, camera: usize, stream: &Stream, cdr: Vec<u8>) -> Result<(), String> {
        if self.fail_publish {
            return Err("transport refused the message".into());
        }
        let (output, head) = (stream.output, stream.head.clone());
        self.messages.push(Published { camera, output, head, cdr, at_ns: self.clock.now_ns() });
        Ok(())
    }
    fn publish_diagnostics(&mut self, cdr: Vec<u8>) -> Result<(), String> {
        self.diagnostics.push(cdr);
        Ok(())
    }
    fn warn(&mut self, message: &str) {
        self.warnings.push(message.to_string());
    }
}
