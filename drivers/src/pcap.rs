//! Packet capture as a wrapper around any [`Nic`], as smoltcp's `PcapWriter`
//! wraps any `Device`: [`PcapNic`] records every frame the NIC hands to the
//! kernel (`rx`) and every frame the kernel transmits (`tx`), timestamped
//! with the kernel's clock ([`Nic::set_now`]: real or virtual time), into a
//! pcapng file of one section, one interface block per wrapped NIC (its
//! name), and per frame an enhanced packet block with its direction
//! (inbound, outbound) and a nanosecond timestamp.
//!
//! Frames the NIC drops itself (a full ring, `rx_missed`) never reach `rx`,
//! so they are not in the file; frames the kernel drops later (`ipintrq`, a
//! socket buffer) are, since the NIC took them.
//!
//! Off the hot path: per frame, the wrapper only copies the frame into a
//! batch buffer; full batches (and what is left at each status check and
//! on drop) go through a bounded channel to a writer thread, which encodes
//! and writes them with the `pcap-file` crate. A full channel (the disk is
//! behind) drops the batch, counted, rather than stall the kernel. The file
//! is bounded: frames beyond `limit` bytes of capture are not recorded,
//! counted too.

use std::fs::File;
use std::io::BufWriter;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use pcap_file::DataLink;
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};

use crate::{Nic, NicStats, NicStatus};

/// Bytes of frames gathered before a batch is handed to the writer.
const BATCH_BYTES: usize = 64 * 1024;
/// Batches in flight to the writer at most (4 MiB).
const CHANNEL_BATCHES: usize = 64;
/// Bytes a record takes in the batch besides the frame: timestamp, length,
/// direction.
const RECORD_HEADER: usize = 8 + 4 + 1;
/// Bytes an enhanced packet block takes in the file besides the frame
/// (header, trailer, padding and the flags option, at most).
const BLOCK_OVERHEAD: u64 = 32 + 3 + 12 + 4;
/// pcapng `epb_flags`: inbound, outbound (RFC draft, §4.3.1).
const INBOUND: u32 = 1;
const OUTBOUND: u32 = 2;

/// What a capture did. Each doc line says what it counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PcapStats {
    /// Frames written to the file
    pub captured: u64,
    /// Frames not recorded because the size limit was reached
    pub over_limit: u64,
    /// Frames lost because the writer fell behind (its queue was full)
    pub writer_behind: u64,
    /// Bytes written to the file
    pub bytes: u64,
}

/// Why a capture could not be made or finished.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    /// The file could not be created.
    #[error("cannot create the capture file {path}: {source}")]
    Create {
        /// The path.
        path: PathBuf,
        /// The system error.
        source: std::io::Error,
    },
    /// Writing the file failed.
    #[error("writing the capture file {path}: {message}")]
    Write {
        /// The path.
        path: PathBuf,
        /// What the pcap writer said.
        message: String,
    },
}

enum Msg {
    /// A new interface: its block comes before its frames.
    Interface(String),
    /// Records of interface `id`: (ts u64, len u32, dir u8, frame) each.
    Batch(u32, Vec<u8>),
}

/// Counters shared by the wrappers and the writer thread.
#[derive(Debug, Default)]
struct Shared {
    captured: AtomicU64,
    over_limit: AtomicU64,
    writer_behind: AtomicU64,
    bytes: AtomicU64,
    /// Capture bytes still allowed (frames and block overhead).
    budget: AtomicU64,
    interfaces: AtomicU32,
}

/// A capture file being written, to which NICs are attached with
/// [`Capture::wrap`]. [`Capture::finish`] waits for the writer once every
/// wrapper is gone.
pub struct Capture {
    path: PathBuf,
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
    base: Duration,
    writer: JoinHandle<Result<(), String>>,
}

impl Capture {
    /// Create `path` (replacing it) and start the writer. Timestamps are
    /// `base` plus the kernel's clock (so `base` maps the kernel's clock to
    /// UNIX time); at most `limit` bytes of frames are recorded.
    pub fn create(path: &Path, limit: u64, base: Duration) -> Result<Capture, PcapError> {
        let file = File::create(path).map_err(|source| PcapError::Create {
            path: path.to_path_buf(),
            source,
        })?;
        let writer = PcapNgWriter::new(BufWriter::new(file)).map_err(|e| PcapError::Write {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let shared = Arc::new(Shared {
            budget: AtomicU64::new(limit),
            ..Shared::default()
        });
        let (tx, rx) = sync_channel(CHANNEL_BATCHES);
        let s2 = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("pcap-writer".into())
            .spawn(move || write_loop(writer, &rx, &s2))
            .map_err(|source| PcapError::Create {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Capture {
            path: path.to_path_buf(),
            tx,
            shared,
            base,
            writer,
        })
    }

    /// Wrap `nic`: its frames go to this capture, as a new interface.
    pub fn wrap<N: Nic>(&self, nic: N) -> PcapNic<N> {
        let id = self.shared.interfaces.fetch_add(1, Ordering::Relaxed);
        // The channel is empty at attach time, so the interface block is
        // queued before any batch of its frames.
        let _ = self.tx.send(Msg::Interface(nic.name().to_string()));
        PcapNic {
            inner: nic,
            id,
            now_ns: 0,
            base_ns: u64::try_from(self.base.as_nanos()).unwrap_or(u64::MAX),
            batch: Vec::with_capacity(BATCH_BYTES + 2048),
            batch_frames: 0,
            tx: self.tx.clone(),
            shared: Arc::clone(&self.shared),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> PcapStats {
        stats(&self.shared)
    }

    /// Wait until every wrapper is dropped and the writer has written and
    /// closed the file; the final counters.
    pub fn finish(self) -> Result<PcapStats, PcapError> {
        drop(self.tx);
        let result = self
            .writer
            .join()
            .unwrap_or_else(|_| Err("the writer thread panicked".to_string()));
        result.map_err(|message| PcapError::Write {
            path: self.path.clone(),
            message,
        })?;
        Ok(stats(&self.shared))
    }
}

fn stats(s: &Shared) -> PcapStats {
    PcapStats {
        captured: s.captured.load(Ordering::Relaxed),
        over_limit: s.over_limit.load(Ordering::Relaxed),
        writer_behind: s.writer_behind.load(Ordering::Relaxed),
        bytes: s.bytes.load(Ordering::Relaxed),
    }
}

/// The writer thread: encode each batch's records as blocks until every
/// sender is gone, then flush.
fn write_loop(
    mut w: PcapNgWriter<BufWriter<File>>,
    rx: &Receiver<Msg>,
    shared: &Shared,
) -> Result<(), String> {
    let err = |e: pcap_file::PcapError| e.to_string();
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Interface(name) => {
                let idb = InterfaceDescriptionBlock {
                    linktype: DataLink::ETHERNET,
                    snaplen: 0,
                    options: vec![
                        InterfaceDescriptionOption::IfName(name.into()),
                        // Timestamps in nanoseconds.
                        InterfaceDescriptionOption::IfTsResol(9),
                    ],
                };
                w.write_pcapng_block(idb).map_err(err)?;
            }
            Msg::Batch(id, buf) => {
                for (ts, dir, frame) in Records(&buf) {
                    let epb = EnhancedPacketBlock {
                        interface_id: id,
                        timestamp: Duration::from_nanos(ts),
                        original_len: u32::try_from(frame.len()).unwrap_or(u32::MAX),
                        data: frame.into(),
                        options: vec![EnhancedPacketOption::Flags(dir)],
                    };
                    let n = w.write_pcapng_block(epb).map_err(err)?;
                    shared.captured.fetch_add(1, Ordering::Relaxed);
                    shared.bytes.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        }
    }
    std::io::Write::flush(w.get_mut()).map_err(|e| e.to_string())
}

/// The records of a batch.
struct Records<'a>(&'a [u8]);

impl<'a> Iterator for Records<'a> {
    type Item = (u64, u32, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.0;
        if b.len() < RECORD_HEADER {
            return None;
        }
        let ts = u64::from_le_bytes(b[..8].try_into().ok()?);
        let len = u32::from_le_bytes(b[8..12].try_into().ok()?) as usize;
        let dir = u32::from(b[12]);
        let frame = b.get(RECORD_HEADER..RECORD_HEADER + len)?;
        self.0 = &b[RECORD_HEADER + len..];
        Some((ts, dir, frame))
    }
}

/// A [`Nic`] whose frames are captured; everything else is the inner NIC's.
pub struct PcapNic<N> {
    inner: N,
    id: u32,
    now_ns: u64,
    base_ns: u64,
    batch: Vec<u8>,
    batch_frames: u64,
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
}

/// Append `frame`'s record to `batch` if the size limit allows; whether it
/// did. Bound: one copy of the frame.
fn push_record(batch: &mut Vec<u8>, shared: &Shared, ts: u64, dir: u32, frame: &[u8]) -> bool {
    let cost = frame.len() as u64 + BLOCK_OVERHEAD;
    let allowed = shared
        .budget
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
            b.checked_sub(cost)
        })
        .is_ok();
    if !allowed {
        shared.over_limit.fetch_add(1, Ordering::Relaxed);
        return false;
    }
    batch.extend_from_slice(&ts.to_le_bytes());
    let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
    batch.extend_from_slice(&len.to_le_bytes());
    batch.push(u8::try_from(dir).unwrap_or(0));
    batch.extend_from_slice(frame);
    true
}

impl<N> PcapNic<N> {
    fn ts(&self) -> u64 {
        self.base_ns.saturating_add(self.now_ns)
    }

    /// Hand the batch to the writer without waiting; if its queue is full,
    /// the batch is dropped and counted.
    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_BYTES + 2048));
        let frames = std::mem::take(&mut self.batch_frames);
        match self.tx.try_send(Msg::Batch(self.id, batch)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.shared
                    .writer_behind
                    .fetch_add(frames, Ordering::Relaxed);
            }
        }
    }

    /// The wrapped NIC.
    pub fn inner(&self) -> &N {
        &self.inner
    }
}

impl<N: Nic> Nic for PcapNic<N> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn mac(&self) -> [u8; 6] {
        self.inner.mac()
    }

    /// Bound: the inner NIC's, plus one copy per frame.
    fn rx(&mut self, count: usize, f: &mut dyn FnMut(&[u8])) -> usize {
        let ts = self.ts();
        let Self {
            inner,
            batch,
            batch_frames,
            shared,
            ..
        } = self;
        let n = inner.rx(count, &mut |frame| {
            if push_record(batch, shared, ts, INBOUND, frame) {
                *batch_frames += 1;
            }
            f(frame);
        });
        if self.batch.len() >= BATCH_BYTES {
            self.flush();
        }
        n
    }

    fn tx(&mut self, frame: &[u8]) {
        let ts = self.ts();
        if push_record(&mut self.batch, &self.shared, ts, OUTBOUND, frame) {
            self.batch_frames += 1;
            if self.batch.len() >= BATCH_BYTES {
                self.flush();
            }
        }
        self.inner.tx(frame);
    }

    fn irq_fd(&self) -> BorrowedFd<'_> {
        self.inner.irq_fd()
    }

    fn set_intr_enabled(&mut self, enabled: bool) {
        self.inner.set_intr_enabled(enabled);
    }

    fn intr_enabled(&self) -> bool {
        self.inner.intr_enabled()
    }

    /// Also hands the current batch to the writer, so the file keeps up
    /// (the kernel checks status at least once a second).
    fn check_status(&mut self) -> NicStatus {
        self.flush();
        self.inner.check_status()
    }

    fn stats(&self) -> NicStats {
        self.inner.stats()
    }

    fn set_now(&mut self, now_ns: u64) {
        self.now_ns = now_ns;
        self.inner.set_now(now_ns);
    }

    fn rx_pending(&self) -> Option<usize> {
        self.inner.rx_pending()
    }

    fn rx_queues(&self) -> usize {
        self.inner.rx_queues()
    }

    fn rx_queue_stats(&self, ring: usize) -> Option<crate::RxQueueStats> {
        self.inner.rx_queue_stats(ring)
    }
}

impl<N> Drop for PcapNic<N> {
    fn drop(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        // The last batch may wait for room: the run is over.
        if self.tx.send(Msg::Batch(self.id, batch)).is_err() {
            self.shared
                .writer_behind
                .fetch_add(self.batch_frames, Ordering::Relaxed);
        }
    }
}
