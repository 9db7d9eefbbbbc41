//! A log sink that request threads append to and one background thread
//! writes out in batches: no allocation, syscall or thread wake-up per line.
//! Lines are written every [`INTERVAL`], or sooner once [`HIGH_WATER`]
//! bytes are queued. It is lossless and bounded: a writer that finds
//! [`LIMIT`] bytes queued waits for the flusher to drain them.

use std::io::{self, Write};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// How long a line may wait before it is written.
pub const INTERVAL: Duration = Duration::from_millis(20);
/// Queued bytes that wake the flusher before the interval is up.
pub const HIGH_WATER: usize = 64 * 1024;
/// Queued bytes at which writers wait (back-pressure instead of loss).
pub const LIMIT: usize = 8 * 1024 * 1024;

#[derive(Default)]
struct Queue {
    buf: Vec<u8>,
    /// The flusher was told to exit once the queue is empty.
    closing: bool,
}

/// The shared queue; `&'static BatchLog` is the `MakeWriter`.
#[derive(Default)]
pub struct BatchLog {
    queue: Mutex<Queue>,
    /// Signals the flusher (high water, closing).
    wake: Condvar,
    /// Signals writers waiting at [`LIMIT`].
    drained: Condvar,
}

impl BatchLog {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends one formatted line (or any bytes).
    pub fn append(&self, bytes: &[u8]) {
        let mut q = self.lock();
        while q.buf.len() >= LIMIT && !q.closing {
            self.wake.notify_one();
            q = self.drained.wait(q).unwrap_or_else(|e| e.into_inner());
        }
        let before = q.buf.len();
        q.buf.extend_from_slice(bytes);
        if before < HIGH_WATER && q.buf.len() >= HIGH_WATER {
            self.wake.notify_one();
        }
    }

    /// Runs the flusher: writes the queue to `out` until [`BatchLog::close`].
    pub fn run(&self, out: &mut dyn Write) {
        let mut spare = Vec::new();
        loop {
            let closing = {
                let mut q = self.lock();
                if q.buf.len() < HIGH_WATER && !q.closing {
                    q = self.wake.wait_timeout(q, INTERVAL).unwrap_or_else(|e| e.into_inner()).0;
                }
                std::mem::swap(&mut q.buf, &mut spare);
                self.drained.notify_all();
                q.closing
            };
            if !spare.is_empty() {
                // Nowhere to report a failed log write; keep serving.
                let _ = out.write_all(&spare).and_then(|()| out.flush());
                spare.clear();
                if spare.capacity() > HIGH_WATER * 4 {
                    spare.shrink_to(HIGH_WATER);
                }
            }
            if closing && self.lock().buf.is_empty() {
                return;
            }
        }
    }

    /// Asks the flusher to write what is queued and return.
    pub fn close(&self) {
        self.lock().closing = true;
        self.wake.notify_one();
    }
}

/// One `write` call from the formatter; it appends straight to the queue.
pub struct Line(&'static BatchLog);

impl Write for Line {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.append(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for &'static BatchLog {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, OnceLock};

    /// A `Write` that records each `write_all` batch.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<Vec<u8>>>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().push(b.to_vec());
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn leak() -> &'static BatchLog {
        Box::leak(Box::default())
    }

    #[test]
    fn lines_are_written_in_order_in_few_batches_and_close_drains() {
        let log = leak();
        let sink = Sink::default();
        let mut out = sink.clone();
        let flusher = std::thread::spawn(move || log.run(&mut out));
        for i in 0..1000 {
            log.append(format!("line {i}\n").as_bytes());
        }
        log.close();
        flusher.join().unwrap();
        let batches = sink.0.lock().unwrap();
        let all: Vec<u8> = batches.concat();
        let expected: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(String::from_utf8(all).unwrap(), expected);
        assert!(batches.len() < 50, "{} writes for 1000 lines", batches.len());
    }

    #[test]
    fn a_line_is_written_within_the_interval_without_any_wake_up() {
        let log = leak();
        let sink = Sink::default();
        let mut out = sink.clone();
        std::thread::spawn(move || log.run(&mut out));
        log.append(b"one\n");
        let deadline = std::time::Instant::now() + INTERVAL * 50;
        while sink.0.lock().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "line never written");
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(sink.0.lock().unwrap().concat(), b"one\n");
        log.close();
    }

    #[test]
    fn writers_wait_at_the_limit_instead_of_dropping() {
        static LOG: OnceLock<&'static BatchLog> = OnceLock::new();
        let log = *LOG.get_or_init(leak);
        // No flusher yet: fill to the limit, then a writer must block.
        log.append(&vec![b'x'; LIMIT]);
        let blocked = std::thread::spawn(move || log.append(b"after\n"));
        std::thread::sleep(Duration::from_millis(50));
        assert!(!blocked.is_finished(), "writer did not wait at the limit");
        let sink = Sink::default();
        let mut out = sink.clone();
        let flusher = std::thread::spawn(move || log.run(&mut out));
        blocked.join().unwrap();
        log.close();
        flusher.join().unwrap();
        let all = sink.0.lock().unwrap().concat();
        assert_eq!(all.len(), LIMIT + 6);
        assert!(all.ends_with(b"after\n"));
    }
}
