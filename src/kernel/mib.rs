//! The kernel's MIB: every knob and counter of a running kernel, declared
//! into the generic `pollsim-sysctl` tree. The polling knobs are declared by
//! `poll.rs` beside their state; this file adds the rest: `kern.hz`,
//! `kern.cp_time`, `net.inet.ip.intr_queue_*`, `dev.<if>.*`, the netisr's
//! and reactor's counters, and the apps' `user.*` nodes.

use pollsim_sysctl::Mib;

use super::Kernel;
use super::discipline::{Kind, moderation, mr, napi};
use super::intr::{Dispatch, IPINTRQ_MAXLEN_MAX, RX_RING_MAX};
use crate::sat;

/// Build the MIB of `k` (its interfaces must be attached).
/// Why a `--sysctl NAME=VALUE` was not applied (shown as `run` says it).
#[derive(Debug, thiserror::Error)]
pub enum AssignError {
    /// Not `NAME=VALUE`.
    #[error("--sysctl {0}: expected NAME=VALUE")]
    Malformed(String),
    /// The MIB refused it.
    #[error("--sysctl: {0}")]
    Refused(pollsim_sysctl::SysctlError),
}

/// Apply `--sysctl NAME=VALUE` settings to `k`, in order, stopping at the
/// first bad one. With `skip_absent`, a name this MIB does not have is
/// passed over: a knob of an app or NIC that only CPU 0 of several has.
pub fn apply(
    mib: &Mib<Kernel>,
    k: &mut Kernel,
    kvs: &[String],
    skip_absent: bool,
) -> Result<(), AssignError> {
    for kv in kvs {
        let (name, value) = kv
            .split_once('=')
            .ok_or_else(|| AssignError::Malformed(kv.clone()))?;
        if skip_absent && !mib.contains(name) {
            continue;
        }
        mib.set(k, name, value).map_err(AssignError::Refused)?;
    }
    Ok(())
}

pub fn build(k: &Kernel) -> Mib<Kernel> {
    let mut mib = Mib::new();
    mib.add_ro(
        "kern.hz",
        "Number of clock ticks per second",
        |k: &Kernel| i64::from(k.hz.get()),
    );
    mib.add_ro("hw.ncpu", "Number of active CPUs", |k: &Kernel| {
        i64::try_from(k.ncpu).unwrap_or(i64::MAX)
    });
    mib.add_ro_list(
        "kern.cp_time",
        "CPU time per state (user nice sys intr idle), in microseconds",
        |k: &Kernel| {
            k.cpu
                .cp_time(k.cpu.last_switch())
                .0
                .iter()
                .map(|ns| ns / 1_000)
                .collect()
        },
    );
    super::poll::register_sysctl(&mut mib, |k: &Kernel| &k.poll, |k: &mut Kernel| &mut k.poll);
    napi::register_sysctl(
        &mut mib,
        |k: &Kernel| &k.disc.napi,
        |k: &mut Kernel| &mut k.disc.napi,
    );
    mr::register_sysctl(
        &mut mib,
        |k: &Kernel| &k.disc.mr,
        |k: &mut Kernel| &mut k.disc.mr,
    );
    register_ipintrq(&mut mib);
    register_polling_enable(&mut mib);
    for i in 0..k.ifs.len() {
        register_if(&mut mib, k, i);
    }
    register_counters(&mut mib);
    register_netstat(&mut mib);
    super::reactor::register_sysctl(&mut mib);
    crate::conns::register_sysctl(&mut mib);
    if k.cost.is_none() {
        super::host::register_sysctl(&mut mib, |k: &Kernel| &k.host, |k: &mut Kernel| &mut k.host);
    }
    if k.cost.is_some() {
        super::cost::register_sysctl(
            &mut mib,
            |k: &Kernel| k.cost.as_ref(),
            |k: &mut Kernel| k.cost.as_mut(),
        );
    }
    super::runq::register_sysctl(
        &mut mib,
        &k.runq,
        |k: &Kernel| &k.runq,
        |k: &mut Kernel| &mut k.runq,
    );
    if k.apps.tcp_echo.is_some() {
        register_threads(&mut mib);
    }
    k.apps.register_sysctl(
        &mut mib,
        |k: &Kernel| &k.apps,
        |k: &mut Kernel| &mut k.apps,
        |k: &Kernel| k.cpu.last_switch(),
    );
    super::busy_poll::register_sysctl(&mut mib, k);
    mib
}

fn register_ipintrq(mib: &mut Mib<Kernel>) {
    let max = sat(IPINTRQ_MAXLEN_MAX as u64);
    mib.add_rw(
        "net.inet.ip.intr_queue_maxlen",
        "Maximum size of the IP input queue",
        (1, max),
        move |_| (1, max),
        |k| sat(k.ipintrq.maxlen() as u64),
        |k, v| {
            k.ipintrq.set_maxlen(v.unsigned_abs() as usize);
            Ok(())
        },
    );
    mib.add_rw_choice(
        "net.isr.dispatch",
        "netisr dispatch policy of polled frames: direct (into the stack), hybrid (direct unless ipintrq holds frames), deferred (through ipintrq)",
        &Dispatch::NAMES,
        |k| k.dispatch.index(),
        |k, v| k.dispatch = Dispatch::ALL[v],
    );
    mib.add_ro(
        "net.inet.ip.intr_queue_drops",
        "Number of packets dropped from the IP input queue",
        |k| sat(k.ipintrq.drops),
    );
    mib.add_ro(
        "net.inet.ip.intr_queue_len",
        "Frames in the IP input queue",
        |k| sat(k.ipintrq.len() as u64),
    );
}

/// tcp-echo's connection threads (the threads model), aggregated: one
/// node each, however many threads.
fn register_threads(mib: &mut Mib<Kernel>) {
    type Get = fn(&super::ThreadStats) -> u64;
    let nodes: [(&str, &str, Get); 5] = [
        ("threads", "Connection threads now (threads model)", |t| {
            t.now
        }),
        ("threads_max", "Most connection threads at once", |t| t.max),
        ("threads_created", "Connection threads made", |t| t.created),
        ("threads_exited", "Connection threads that exited", |t| {
            t.exited
        }),
        (
            "thread_mem_kb",
            "Memory the connection threads' stacks hold now, KiB (threads x thread_stack_kb)",
            |t| t.stack_kb,
        ),
    ];
    for (leaf, descr, get) in nodes {
        mib.add_ro(
            &format!("user.tcp_echo.{leaf}"),
            descr,
            move |k: &Kernel| sat(get(&k.threads)),
        );
    }
}

/// `kern.polling.enable`: the legacy switch of polling on every interface
/// (FreeBSD <= 5; deprecated in 6 for `ifconfig polling`, see
/// [`Kernel::set_polling_all`]).
fn register_polling_enable(mib: &mut Mib<Kernel>) {
    mib.add_rw_uint(
        "kern.polling.enable",
        "Switch polling for all interfaces (legacy: use dev.<if>.polling)",
        (0, 1),
        |_| (0, 1),
        |k| i64::from(k.polling_enabled()),
        |k, v| {
            let refused = k.set_polling_all(v == 1);
            if refused.is_empty() {
                return Ok(());
            }
            let names: Vec<&str> = refused.iter().map(|&i| k.ifs[i].nic.name()).collect();
            Err(format!(
                "polling list full: {} not switched",
                names.join(", ")
            ))
        },
    );
}

fn register_if(mib: &mut Mib<Kernel>, k: &Kernel, i: usize) {
    let p = format!("dev.{}", k.ifs[i].nic.name());
    mib.add_rw(
        &format!("{p}.polling"),
        "Device polling on this interface (1) or interrupts (0)",
        (0, 1),
        |_| (0, 1),
        move |k| i64::from(k.ifs[i].discipline == Kind::Polling),
        move |k, v| {
            k.set_polling(i, v == 1);
            Ok(())
        },
    );
    mib.add_rw_choice(
        &format!("{p}.discipline"),
        "Input discipline: interrupt (4.4BSD ipintrq), polling (FreeBSD kern_poll), napi (Linux), mr (Mogul & Ramakrishnan)",
        &Kind::NAMES,
        move |k| k.ifs[i].discipline.index(),
        move |k, v| {
            k.set_discipline(i, Kind::ALL[v]);
        },
    );
    mib.add_ro_str(&format!("{p}.ether"), "The NIC's MAC address", move |k| {
        k.ifs[i].nic.mac().map(|b| format!("{b:02x}")).join(":")
    });
    mib.add_ro_str(
        &format!("{p}.inet"),
        "The stack's IPv4 address on it",
        move |k| {
            k.netisr
                .sockets
                .nic(i)
                .ip_addrs()
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        },
    );
    napi::register_if_sysctl(
        mib,
        &p,
        i,
        |k: &Kernel| &k.disc.napi,
        |k: &mut Kernel| &mut k.disc.napi,
    );
    moderation::register_if_sysctl(
        mib,
        &p,
        move |k: &Kernel| &k.ifs[i].moderation,
        move |k: &mut Kernel| &mut k.ifs[i].moderation,
    );
    let ring_max = sat(RX_RING_MAX as u64);
    mib.add_rw(
        &format!("{p}.rx_ring"),
        "Frames one interrupt moves from the receive ring",
        (1, ring_max),
        move |_| (1, ring_max),
        move |k| sat(k.ifs[i].rx_ring as u64),
        move |k, v| {
            k.ifs[i].rx_ring = v.unsigned_abs() as usize;
            Ok(())
        },
    );
    type Get = fn(&super::IfNet) -> u64;
    let nodes: [(&str, &str, Get); 11] = [
        ("interrupts", "Interrupts serviced", |f| {
            f.counters.interrupts
        }),
        ("polls", "Calls of the poll handler", |f| f.counters.polls),
        (
            "status_checks",
            "Status checks (link state, rx_missed)",
            |f| f.counters.status_checks,
        ),
        ("link_up", "Link state at the last status check", |f| {
            u64::from(f.counters.link_up)
        }),
        ("rx_packets", "Frames taken from the receive ring", |f| {
            f.nic.stats().rx_packets
        }),
        ("rx_bytes", "Bytes taken from the receive ring", |f| {
            f.nic.stats().rx_bytes
        }),
        (
            "rx_empty",
            "Receive attempts that found the ring empty",
            |f| f.nic.stats().rx_empty,
        ),
        (
            "rx_missed",
            "Frames dropped by the device because its receive ring was full",
            |f| f.nic.stats().rx_missed,
        ),
        ("tx_packets", "Frames transmitted", |f| {
            f.nic.stats().tx_packets
        }),
        (
            "tx_dropped",
            "Frames dropped on transmit (device busy)",
            |f| f.nic.stats().tx_dropped,
        ),
        ("errors", "Receive or transmit errors", |f| {
            f.nic.stats().errors
        }),
    ];
    for (name, descr, get) in nodes {
        mib.add_ro(&format!("{p}.{name}"), descr, move |k: &Kernel| {
            sat(get(&k.ifs[i]))
        });
    }
    register_if_stack(mib, &p, i);
}

/// The per-interface share of the stage counters, so that the frame
/// accounting balances per interface as well as in total.
fn register_if_stack(mib: &mut Mib<Kernel>, p: &str, i: usize) {
    type Get = fn(&Kernel, usize) -> u64;
    let nodes: [(&str, &str, Get); 6] = [
        (
            "ipintrq_drops",
            "Frames of this interface dropped because ipintrq was full",
            |k, i| k.ifs[i].counters.ipintrq_drops,
        ),
        (
            "ipintrq_len",
            "Frames of this interface waiting in ipintrq",
            |k, i| k.ipintrq.len_of(i) as u64,
        ),
        (
            "stack_frames",
            "Frames of this interface handed to the protocol stack",
            |k, i| k.netisr.nic_stats(i).frames,
        ),
        (
            "udp_delivered",
            "UDP datagrams of this interface queued on an app's socket",
            |k, i| k.netisr.nic_stats(i).udp_delivered,
        ),
        (
            "udp_sockbuf_drops",
            "UDP datagrams of this interface dropped at a full socket buffer",
            |k, i| k.netisr.nic_stats(i).udp_sockbuf_drops,
        ),
        (
            "stack_tx",
            "Frames the stack sent out of this interface",
            |k, i| k.netisr.nic_stats(i).tx_frames,
        ),
    ];
    for (name, descr, get) in nodes {
        mib.add_ro(&format!("{p}.{name}"), descr, move |k: &Kernel| {
            sat(get(k, i))
        });
    }
}

/// The per-cause input counters (`pollsim netstat -s`), one node per
/// field, summed over the interfaces.
fn register_netstat(mib: &mut Mib<Kernel>) {
    for (i, f) in super::netstat::FIELDS.iter().enumerate() {
        let descr = match f.freebsd {
            Some(fb) => format!("{} ({fb})", f.text),
            None => f.text.to_string(),
        };
        mib.add_ro(
            &super::netstat::sysctl_name(f),
            &descr,
            move |k: &Kernel| sat((super::netstat::FIELDS[i].get)(&k.netisr.stats().inet)),
        );
    }
}

fn register_counters(mib: &mut Mib<Kernel>) {
    type Get = fn(&Kernel) -> u64;
    let nodes: [(&str, &str, Get); 18] = [
        (
            "net.netisr.frames",
            "Frames handed to the protocol stack",
            |k| k.netisr.stats().frames,
        ),
        ("net.netisr.arp", "ARP frames", |k| k.netisr.stats().arp()),
        (
            "net.netisr.udp",
            "IPv4 UDP datagrams for this host (udps_ipackets)",
            |k| k.netisr.stats().udp(),
        ),
        (
            "net.netisr.tcp",
            "IPv4 TCP segments for this host (tcps_rcvtotal)",
            |k| k.netisr.stats().tcp(),
        ),
        ("net.netisr.icmp", "IPv4 ICMP messages for this host", |k| {
            k.netisr.stats().icmp()
        }),
        (
            "net.netisr.other",
            "Other frames (refused below UDP/TCP/ICMP, other protocols, IPv6)",
            |k| k.netisr.stats().other(),
        ),
        (
            "net.netisr.udp_delivered",
            "UDP datagrams queued on an app's socket",
            |k| k.netisr.stats().udp_delivered,
        ),
        (
            "net.netisr.udp_sockbuf_drops",
            "UDP datagrams for an app dropped because its socket buffer was full",
            |k| k.netisr.stats().udp_sockbuf_drops,
        ),
        (
            "net.netisr.listen_drops",
            "SYNs dropped because no listener of their shard was free (listen queue overflow)",
            |k| k.netisr.stats().listen_drops,
        ),
        (
            "net.netisr.tx_frames",
            "Frames the stack sent to the NICs",
            |k| k.netisr.stats().tx_frames,
        ),
        (
            "net.netisr.txq_drops",
            "Frames dropped because the transmit queue was full",
            |k| k.netisr.stats().txq_drops,
        ),
        (
            "net.netisr.egress_runs",
            "Egress passes (timers, replies, app writes)",
            |k| k.netisr.stats().egress_runs,
        ),
        (
            "kern.sched.ticks",
            "Clock interrupts (hardclock) taken",
            |k| k.sched.ticks,
        ),
        (
            "kern.sched.netisr_runs",
            "Units of netisr work (a frame or a polling chunk)",
            |k| k.sched.netisr_runs,
        ),
        ("kern.sched.user_steps", "User steps run", |k| {
            k.sched.user_steps
        }),
        (
            "kern.sched.preemptions",
            "User work cut short by an interrupt or a tick",
            |k| k.sched.preemptions,
        ),
        (
            "kern.sched.idle_polls",
            "Idle-loop polls (kern.polling.idle_poll)",
            |k| k.sched.idle_polls,
        ),
        (
            "net.inet.ip.intr_queue_enqueued",
            "Frames queued on the IP input queue",
            |k| k.ipintrq.enqueued,
        ),
    ];
    for (name, descr, get) in nodes {
        mib.add_ro(name, descr, move |k: &Kernel| sat(get(k)));
    }
}
