//! A panic hook that keeps caught libtorch panics off stderr. tch raises a libtorch exception (CUDA out of memory,
//! a shape libtorch refuses) as a Rust panic; the places that catch one ([`crate::model::guarded`], the node's and
//! the runner's per-frame model calls) report it themselves, throttled. Without this hook the default hook also
//! prints each one (message, and a backtrace hint) past the node's warning throttle.
//!
//! [`catch_quiet`] marks its thread as inside a guarded section while it runs; the hook of
//! [`install_quiet_panic_hook`] stays silent for a panic raised there (remembering where it was raised, for the
//! report) and hands every other panic to the hook installed before it, so bugs elsewhere still print.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe, PanicHookInfo};
use std::sync::Once;

thread_local! {
    /// How many [`catch_quiet`] calls this thread is inside.
    static GUARDED: Cell<u32> = const { Cell::new(0) };
    /// Where the last quiet panic of this thread was raised (`file:line`).
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// A panic caught by [`catch_quiet`]: its payload and where it was raised (when the quiet hook saw it).
pub struct Caught {
    pub payload: Box<dyn Any + Send>,
    pub location: Option<String>,
}

impl Caught {
    /// The panic's message.
    pub fn text(&self) -> String {
        super::panic_text(self.payload.as_ref())
    }
}

impl std::fmt::Debug for Caught {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caught").field("text", &self.text()).field("location", &self.location).finish()
    }
}

/// Installs the quiet hook (once per process; later calls do nothing). The binaries call it first thing.
pub fn install_quiet_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(quiet_hook(previous));
    });
}

/// The hook [`install_quiet_panic_hook`] installs: silent inside [`catch_quiet`], `previous` everywhere else.
fn quiet_hook(
    previous: Box<dyn Fn(&PanicHookInfo<'_>) + Sync + Send + 'static>,
) -> Box<dyn Fn(&PanicHookInfo<'_>) + Sync + Send + 'static> {
    Box::new(move |info| {
        if is_guarded() {
            let at = info.location().map(|l| format!("{}:{}", l.file(), l.line()));
            // try_with: a panic while the thread's locals are torn down has nowhere to go, and must not abort.
            let _ = LOCATION.try_with(|l| *l.borrow_mut() = at);
        } else {
            previous(info)
        }
    })
}

/// Whether this thread is inside [`catch_quiet`] now.
fn is_guarded() -> bool {
    GUARDED.try_with(|g| g.get() > 0).unwrap_or(false)
}

/// `catch_unwind` for a section whose panics the caller reports itself: with the quiet hook installed, a panic in
/// `f` (on this thread) prints nothing and comes back as [`Caught`]. Nests.
pub fn catch_quiet<T>(f: impl FnOnce() -> T) -> Result<T, Caught> {
    struct Section;
    impl Drop for Section {
        fn drop(&mut self) {
            let _ = GUARDED.try_with(|g| g.set(g.get().saturating_sub(1)));
        }
    }
    GUARDED.with(|g| g.set(g.get() + 1));
    let section = Section;
    let _ = LOCATION.try_with(|l| l.borrow_mut().take());
    let result = catch_unwind(AssertUnwindSafe(f));
    drop(section);
    result.map_err(|payload| Caught { payload, location: LOCATION.try_with(|l| l.borrow_mut().take()).ok().flatten() })
}
