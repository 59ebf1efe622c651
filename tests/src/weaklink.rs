//! A weak mobile link between a phone and the server, emulated in user space: one-way delay,
//! random loss and a bandwidth limit with a queue, like `tc netem … delay … loss … rate …`.
//!
//! Why not `tc netem`: kernels built without `sch_netem` (the 2-core machines these tests run
//! on have none, and no modules to load) refuse it. Here the phone's and the server's network
//! namespaces each hold a VXLAN interface whose UDP packets go to this emulator in a third
//! namespace, which forwards every Ethernet frame after the link's delay, drops some at random
//! (seeded, so a run replays) and paces them at the link's rate. The phone and the server speak
//! real TCP over it, with the kernel's own retransmissions and congestion control.
//!
//! The emulator also counts what crossed the link (whole Ethernet frames, so TCP/IP headers,
//! acknowledgements and retransmissions are included) and can drop the link entirely, as when a
//! chief walks out of coverage. It is driven by text lines (`down`, `up`, `stats`) and stops
//! when its control input closes. It must not look into what it carries beyond what the
//! checksum repair below needs.

use std::io::{BufRead, Write};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// Bytes of the VXLAN header in front of every Ethernet frame.
const VXLAN_HEADER: usize = 8;

/// What the link does to every frame, the same in both directions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkSpec {
    pub one_way_delay: Duration,
    /// Probability that a frame is lost, 0 to 1.
    pub loss: f64,
    pub rate_bits_per_s: u64,
    /// Frames waiting for the link or in flight before new ones are dropped (netem's `limit`).
    pub queue_frames: usize,
}

impl LinkSpec {
    /// A rural mobile link: 300 ms round trip, 5 % loss, 256 kbit/s.
    pub const FIELD: LinkSpec = LinkSpec {
        one_way_delay: Duration::from_millis(150),
        loss: 0.05,
        rate_bits_per_s: 256_000,
        queue_frames: 1_000,
    };

    /// A link from `delay=25ms,loss=0.01,rate=10mbit[,queue=1000]` (one-way delay in ms, loss
    /// from 0 to 1, rate in `kbit` or `mbit` per second or bare bits per second); what is not
    /// named is as in [`LinkSpec::FIELD`].
    pub fn parse(text: &str) -> Result<LinkSpec, String> {
        let mut spec = LinkSpec::FIELD;
        for part in text.split(',').filter(|p| !p.trim().is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not key=value"))?;
            let number = |v: &str| {
                v.trim()
                    .parse::<f64>()
                    .map_err(|_| format!("{part:?}: not a number"))
            };
            match key.trim() {
                "delay" => {
                    let ms = number(value.trim().trim_end_matches("ms"))?;
                    spec.one_way_delay = Duration::from_secs_f64(ms.max(0.0) / 1_000.0);
                }
                "loss" => spec.loss = number(value)?.clamp(0.0, 1.0),
                "rate" => {
                    let value = value.trim();
                    let (digits, unit) = if let Some(v) = value.strip_suffix("mbit") {
                        (v, 1e6)
                    } else if let Some(v) = value.strip_suffix("kbit") {
                        (v, 1e3)
                    } else {
                        (value, 1.0)
                    };
                    let rate = number(digits)? * unit;
                    if rate < 1.0 {
                        return Err(format!("{part:?}: the rate must be positive"));
                    }
                    spec.rate_bits_per_s = rate as u64;
                }
                "queue" => spec.queue_frames = number(value)?.max(1.0) as usize,
                other => return Err(format!("unknown link setting {other:?}")),
            }
        }
        Ok(spec)
    }

    pub fn rtt(&self) -> Duration {
        self.one_way_delay * 2
    }

    /// How long `bytes` take at the link's rate.
    pub fn transmit_time(&self, bytes: u64) -> Duration {
        Duration::from_secs_f64(bytes as f64 * 8.0 / self.rate_bits_per_s as f64)
    }
}

/// What crossed one direction of the link.
#[derive(Debug, Default)]
struct Counters {
    frames: AtomicU64,
    bytes: AtomicU64,
    lost: AtomicU64,
    /// Dropped while the link was down.
    cut: AtomicU64,
    /// Dropped because the queue was full.
    overflow: AtomicU64,
}

impl Counters {
    fn json(&self) -> Value {
        json!({
            "frames": self.frames.load(Ordering::Relaxed),
            "bytes": self.bytes.load(Ordering::Relaxed),
            "lost": self.lost.load(Ordering::Relaxed),
            "cut": self.cut.load(Ordering::Relaxed),
            "overflow": self.overflow.load(Ordering::Relaxed),
        })
    }
}

/// One direction: frames in on `from`, out on `to` towards `peer`.
struct Direction {
    from: UdpSocket,
    to: UdpSocket,
    peer: SocketAddr,
    counters: Arc<Counters>,
}

/// Runs the link until `control` closes: frames from the phone arrive on `device_side` and go
/// to `server` through `server_side`, and back the other way to `device`. Answers `stats` on
/// `control` with one JSON line on `out`: `{"up": {...}, "down": {...}}` (up is phone to
/// server), byte counts being whole Ethernet frames offered to the link.
pub fn run(
    spec: LinkSpec,
    seed: u64,
    (device_side, device): (UdpSocket, SocketAddr),
    (server_side, server): (UdpSocket, SocketAddr),
    control: impl BufRead,
    mut out: impl Write,
) -> std::io::Result<()> {
    let down = Arc::new(AtomicBool::new(false));
    let up_counters = Arc::new(Counters::default());
    let down_counters = Arc::new(Counters::default());
    let directions = [
        Direction {
            from: device_side.try_clone()?,
            to: server_side.try_clone()?,
            peer: server,
            counters: up_counters.clone(),
        },
        Direction {
            from: server_side,
            to: device_side,
            peer: device,
            counters: down_counters.clone(),
        },
    ];
    for (n, direction) in directions.into_iter().enumerate() {
        let down = down.clone();
        let rng = StdRng::seed_from_u64(seed ^ (n as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        std::thread::spawn(move || forward(spec, direction, rng, &down));
    }
    for line in control.lines() {
        match line?.trim() {
            "down" => down.store(true, Ordering::SeqCst),
            "up" => down.store(false, Ordering::SeqCst),
            "stats" => {}
            other => writeln!(
                out,
                "{}",
                json!({ "error": format!("unknown command {other:?}") })
            )?,
        }
        writeln!(
            out,
            "{}",
            json!({ "up": up_counters.json(), "down": down_counters.json() })
        )?;
        out.flush()?;
    }
    Ok(())
}

/// Receives frames, decides their fate and hands the survivors to a sender that releases each
/// at its time. Departure times only grow, so a plain FIFO keeps them in order.
fn forward(spec: LinkSpec, direction: Direction, mut rng: StdRng, down: &AtomicBool) {
    let Direction {
        from,
        to,
        peer,
        counters,
    } = direction;
    let queued = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    {
        let queued = queued.clone();
        std::thread::spawn(move || {
            for (at, mut datagram) in rx {
                if let Some(wait) = at.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                repair_tcp_checksum(&mut datagram);
                // A full socket buffer on the other side is one more lost frame.
                let _ = to.send_to(&datagram, peer);
                queued.fetch_sub(1, Ordering::SeqCst);
            }
        });
    }
    let mut busy_until = Instant::now();
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok(len) = from.recv(&mut buf) else {
            return;
        };
        let frame = len.saturating_sub(VXLAN_HEADER) as u64;
        counters.frames.fetch_add(1, Ordering::Relaxed);
        counters.bytes.fetch_add(frame, Ordering::Relaxed);
        if down.load(Ordering::SeqCst) {
            counters.cut.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if rng.random_bool(spec.loss) {
            counters.lost.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if queued.load(Ordering::SeqCst) >= spec.queue_frames {
            counters.overflow.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let sent = busy_until.max(Instant::now()) + spec.transmit_time(frame);
        busy_until = sent;
        queued.fetch_add(1, Ordering::SeqCst);
        if tx
            .send((sent + spec.one_way_delay, buf[..len].to_vec()))
            .is_err()
        {
            return;
        }
    }
}

/// Fills in the TCP checksum of an IPv4 packet inside a VXLAN datagram.
///
/// The sending kernel leaves checksums to the "hardware" (`CHECKSUM_PARTIAL`) and trusts that
/// they get filled in on the way out; a frame that leaves the kernel through a UDP socket to a
/// program, as here, still carries the placeholder, and the receiving kernel would drop it.
/// A real link carries correct checksums, so the emulator computes them.
fn repair_tcp_checksum(datagram: &mut [u8]) {
    const ETHERNET: usize = 14;
    let ip = VXLAN_HEADER + ETHERNET;
    if datagram.len() < ip + 20 || datagram[ip - 2..ip] != [0x08, 0x00] {
        return;
    }
    let header_len = usize::from(datagram[ip] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([datagram[ip + 2], datagram[ip + 3]]));
    let fragment = u16::from_be_bytes([datagram[ip + 6], datagram[ip + 7]]) & 0x3fff;
    let tcp = ip + header_len;
    if datagram[ip + 9] != 6
        || fragment != 0
        || total < header_len + 20
        || ip + total > datagram.len()
    {
        return;
    }
    let segment_len = total - header_len;
    datagram[tcp + 16] = 0;
    datagram[tcp + 17] = 0;
    let mut sum: u32 = 6 + segment_len as u32;
    for pair in datagram[ip + 12..ip + 20].chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    for pair in datagram[tcp..ip + total].chunks(2) {
        let low = pair.get(1).copied().unwrap_or(0);
        sum += u32::from(u16::from_be_bytes([pair[0], low]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let checksum = !(sum as u16);
    datagram[tcp + 16..tcp + 18].copy_from_slice(&checksum.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SYN from 10.0.0.2:40000 to 10.0.0.1:80 with a placeholder checksum, framed as the
    /// emulator sees it.
    fn syn() -> Vec<u8> {
        let mut d = vec![0u8; VXLAN_HEADER + 12];
        d.extend([0x08, 0x00]);
        d.extend([
            0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1,
        ]);
        d.extend([
            0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff,
        ]);
        d.extend([0xde, 0xad, 0, 0]);
        d
    }

    fn ones_complement_sum(bytes: &[u8]) -> u16 {
        let mut sum: u32 = bytes
            .chunks(2)
            .map(|p| u32::from(u16::from_be_bytes([p[0], p.get(1).copied().unwrap_or(0)])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    #[test]
    fn repaired_tcp_checksums_verify() {
        let mut d = syn();
        repair_tcp_checksum(&mut d);
        let ip = VXLAN_HEADER + 14;
        // The receiver's check: pseudo-header plus segment sums to 0xffff.
        let mut pseudo = d[ip + 12..ip + 20].to_vec();
        pseudo.extend([0, 6, 0, 20]);
        pseudo.extend(&d[ip + 20..]);
        assert_eq!(ones_complement_sum(&pseudo), 0xffff);
        assert_ne!(&d[ip + 36..ip + 38], &[0xde, 0xad]);
    }

    #[test]
    fn other_frames_are_left_alone() {
        let mut arp = syn();
        arp[VXLAN_HEADER + 12..VXLAN_HEADER + 14].copy_from_slice(&[0x08, 0x06]);
        let before = arp.clone();
        repair_tcp_checksum(&mut arp);
        assert_eq!(arp, before);
        let mut short = vec![0u8; 30];
        repair_tcp_checksum(&mut short);
        assert_eq!(short, vec![0u8; 30]);
    }

    #[test]
    fn the_field_link_takes_a_second_for_32_kilobytes() {
        let spec = LinkSpec::FIELD;
        assert_eq!(spec.rtt(), Duration::from_millis(300));
        assert_eq!(spec.transmit_time(32_000), Duration::from_secs(1));
    }

    #[test]
    fn a_link_is_read_from_its_settings() {
        let spec = LinkSpec::parse("delay=25ms,loss=0,rate=10mbit").unwrap();
        assert_eq!(spec.one_way_delay, Duration::from_millis(25));
        assert_eq!(spec.loss, 0.0);
        assert_eq!(spec.rate_bits_per_s, 10_000_000);
        assert_eq!(spec.queue_frames, LinkSpec::FIELD.queue_frames);
        assert_eq!(LinkSpec::parse("").unwrap(), LinkSpec::FIELD);
        assert_eq!(
            LinkSpec::parse("rate=256kbit").unwrap().rate_bits_per_s,
            256_000
        );
        assert!(LinkSpec::parse("rate=0").is_err());
        assert!(LinkSpec::parse("delay").is_err());
        assert!(LinkSpec::parse("jitter=5ms").is_err());
    }
}
