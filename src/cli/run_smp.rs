//! `pollsim run --cpus N` on the real clock: one kernel thread per
//! simulated CPU, pinned to host CPU `c`, each reading its own queues of a
//! multiqueue tap (`--queues M`, IFF_MULTI_QUEUE; queue q served by CPU
//! q % N, [`crate::queues::RingMap`]: several through a
//! [`QueueGroup`], none for a CPU past the last queue) and running its own
//! discipline, stack and apps, as the virtual-time CPUs do
//! (docs/smp.md). Linux steers each flow written to the tap to one queue
//! (its flow hash, or the queue that last wrote the flow's replies).
//!
//! CPU 0 serves the instance's control socket (its MIB, `hw.ncpu` among
//! it), CPU c one named `NAME-cpuC` ([`cpu_name`]); CPU 0 runs the
//! interactive process; every CPU runs the other apps, so a flow
//! Linux steers to any queue is answered there. A second `--if` is the
//! quiet NIC: a single-queue tap that CPU 0 alone serves beside its queue
//! of the first (as the simulation's CPU 0 has tap1, the probe and the
//! apps: `compare --cpus` probes there). Not yet: more interfaces,
//! `--pcap`, `--conns`.

use std::sync::atomic::AtomicBool;

use anyhow::{Context as _, bail};
use pollsim_drivers::{Nic, QueueGroup, TapNic, TapQueue};

use super::cpu_line::CpuLine;
use super::run_sim::print_cpus_summary;
use super::{IfSpec, RunArgs, kernel_side, lab, mac_for, signals};
use crate::apps::AppKind;
use crate::ctl::Control;
use crate::kernel::clock::Clock;
use crate::kernel::sched::{Hooks, RunOptions};
use crate::kernel::time::Nanos;
use crate::kernel::{Kernel, KernelConfig, mib};
use crate::queues::RingMap;
use crate::report;
use crate::rt::clock::RealClock;
use crate::rt::sched::run_real;

/// Run `args.cpus` pinned kernel threads on the queues of one tap.
pub fn run(args: &RunArgs, cfg: &KernelConfig, opts: RunOptions) -> anyhow::Result<()> {
    if args.cpus == 0 {
        bail!("--cpus 0: at least 1");
    }
    let ifs = args.interfaces()?;
    let (f, quiet) = match ifs.as_slice() {
        [f] => (f, None),
        [f, q] => (f, Some(q)),
        _ => bail!(
            "--cpus {} takes one interface, or two: the first multiqueue, the second a quiet \
             single-queue tap that CPU 0 serves (--if NAME=ADDR --if NAME=ADDR)",
            args.cpus
        ),
    };
    if args.pcap.is_some() || args.conns > 0 {
        bail!("--cpus {} takes no --pcap or --conns for now", args.cpus);
    }
    let map =
        RingMap::new(args.cpus, args.queues.unwrap_or(args.cpus)).map_err(anyhow::Error::msg)?;
    let host = std::thread::available_parallelism().map_or(1, |n| n.get());
    if args.cpus > host {
        bail!(
            "--cpus {}: this host has {host} CPUs, and each simulated CPU is a kernel thread \
             pinned to one of them (more run on virtual time: --sim)",
            args.cpus
        );
    }
    let stop = signals::stop_flag()?;
    // CPU 0 answers to the instance's name, CPU c to NAME-cpuC: `pollsim
    // sysctl --name NAME-cpu1 kern.cp_time` reads CPU 1.
    let mut controls = (0..args.cpus)
        .map(|c| Control::bind(&cpu_name(&args.name, c)))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter();
    let mac = mac_for(&f.addr);
    let kernel_cidr = format!("{}/{}", kernel_side(&f.addr), f.addr.prefix_len());
    if args.private_netns {
        super::enter_private_netns_bare(&ifs)?;
        // Down until its queues are attached: a tap already up drops what
        // the kernel sends in its first instant (docs/design.md).
        lab::add_tap_for_queues(&f.name, &kernel_cidr, map.nqueues())
            .with_context(|| format!("creating {} in the private namespace", f.name))?;
    }
    let mut quiet = open_quiet(args, quiet)?;
    let nics = open_cpu_queues(&f.name, mac, &map)?;
    if args.private_netns {
        lab::link_up(&f.name).with_context(|| format!("bringing {} up", f.name))?;
    }
    eprintln!(
        "pollsim: running on {} as {} ({}), {} CPUs, one kernel thread per CPU pinned to host \
         CPU c, {}{}, kern.hz={}, apps {}; Ctrl-C to stop",
        f.name,
        f.addr,
        args.mode.name(),
        args.cpus,
        map.describe(),
        quiet
            .as_ref()
            .map(|q| format!(", and CPU 0 {} as {}", q.1.name, q.1.addr))
            .unwrap_or_default(),
        args.hz,
        args.apps_list()
    );
    if opts.report_every.is_some() {
        println!("{}", CpuLine::HEADER);
    }
    let ends = std::thread::scope(|s| -> anyhow::Result<Vec<(String, report::Accounting)>> {
        let handles: Vec<_> = nics
            .into_iter()
            .enumerate()
            .map(|(c, tap)| {
                let control = controls.next();
                // The quiet NIC is CPU 0's, the first thread's.
                let quiet = quiet.take();
                let (cfg, stop) = (cfg.clone(), &stop);
                std::thread::Builder::new()
                    .name(format!("pollsim-cpu{c}"))
                    .spawn_scoped(s, move || {
                        cpu_thread(
                            args,
                            CpuSpec {
                                c,
                                cfg,
                                tap,
                                quiet,
                                map,
                                control,
                            },
                            stop,
                            opts,
                        )
                    })
                    .context("spawning a kernel thread")
            })
            .collect::<anyhow::Result<_>>()?;
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("a kernel thread panicked"))?
            })
            .collect()
    })?;
    print_cpus_summary(&ends);
    Ok(())
}

/// The queues of tap `name` each CPU serves, as its NIC, CPU 0's first:
/// the `map.nqueues()` queues opened (all or none), CPU `c` getting
/// queues `c`, `c + N`, ... ([`RingMap::queues_of`]). One queue is the
/// [`TapQueue`] itself, as with one queue per CPU; several are a
/// [`QueueGroup`] of them; none a `QueueGroup` of none.
fn open_cpu_queues(
    name: &str,
    mac: [u8; 6],
    map: &RingMap,
) -> anyhow::Result<Vec<Box<dyn Nic + Send>>> {
    let mut taps: Vec<Option<TapQueue>> = TapQueue::open_queues(name, map.nqueues(), mac)?
        .into_iter()
        .map(Some)
        .collect();
    (0..map.ncpu())
        .map(|c| {
            let mut mine: Vec<TapQueue> = map
                .queues_of(c)
                .into_iter()
                .filter_map(|q| taps[q].take())
                .collect();
            Ok(match mine.len() {
                1 => Box::new(mine.remove(0)) as Box<dyn Nic + Send>,
                _ => Box::new(QueueGroup::new(name, mac, mine)?),
            })
        })
        .collect()
}

/// The control socket name of CPU `c` of instance `name`: `name` for CPU
/// 0, `name-cpuC` for the others.
pub fn cpu_name(name: &str, c: usize) -> String {
    match c {
        0 => name.to_string(),
        c => format!("{name}-cpu{c}"),
    }
}

/// The quiet NIC (the second `--if`) that CPU 0 serves: created
/// single-queue and up in the private namespace with `--private-netns`
/// (as the one-CPU path creates its taps), and opened as that path opens
/// it, with its address. `None` without a second interface.
fn open_quiet(args: &RunArgs, quiet: Option<&IfSpec>) -> anyhow::Result<Option<(TapNic, IfSpec)>> {
    let Some(q) = quiet else {
        return Ok(None);
    };
    if args.private_netns {
        let kernel_cidr = format!("{}/{}", kernel_side(&q.addr), q.addr.prefix_len());
        lab::setup_tap(&q.name, &kernel_cidr)
            .with_context(|| format!("creating {} in the private namespace", q.name))?;
    }
    let nic = TapNic::open(&q.name, mac_for(&q.addr))?;
    Ok(Some((nic, q.clone())))
}

/// What one CPU's thread starts with.
struct CpuSpec {
    c: usize,
    cfg: KernelConfig,
    /// Its queues of the tap (see [`open_cpu_queues`]).
    tap: Box<dyn Nic + Send>,
    map: RingMap,
    /// The quiet NIC and its address (CPU 0 only).
    quiet: Option<(TapNic, IfSpec)>,
    control: Option<Control>,
}

/// CPU `c`: pin, build its kernel on its queue, run until stopped; its
/// summary and accounting.
fn cpu_thread(
    args: &RunArgs,
    spec: CpuSpec,
    stop: &AtomicBool,
    opts: RunOptions,
) -> anyhow::Result<(String, report::Accounting)> {
    let CpuSpec {
        c,
        mut cfg,
        tap,
        quiet,
        map,
        mut control,
    } = spec;
    let mut set = nix::sched::CpuSet::new();
    set.set(c).context("CPU set")?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
        .with_context(|| format!("pinning CPU {c}'s thread to host CPU {c}"))?;
    if c > 0 {
        cfg.apps.retain(|a| *a != AppKind::Interactive);
        cfg.seed ^= (c as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    let nic = tap.name().to_string();
    let mut clock = RealClock::new();
    let mut k = Kernel::new(&cfg, clock.now());
    k.ncpu = args.cpus;
    // ifpoll's status poll is CPU 0's.
    k.poll.status_poll = c == 0;
    k.attach(tap, &cfg, clock.now());
    // Before the apps start, so that they listen on it too.
    if let Some((nic, q)) = quiet {
        k.attach_at(Box::new(nic), q.addr, &cfg, clock.now());
    }
    let mut mib = mib::build(&k);
    crate::rt::host::register_sysctl(&mut mib);
    crate::queues::register_sysctl(&mut mib, &k, 0, &map.queues_of(c), &map);
    // CPUs but 0 skip the knobs of the app only CPU 0 runs.
    mib::apply(&mib, &mut k, &args.sysctls, c > 0)?;
    if k.echo_threads() {
        bail!(super::THREADS_NEED_SIM);
    }
    k.start_apps();
    k.check_status();
    let mut prev = CpuLine::of_kernel(&k, &mib, &nic);
    let mut lines = 0u32;
    let mut observe = |k: &mut Kernel, _now: Nanos| {
        // The first header is printed before the threads start.
        if c == 0 && lines > 0 && lines.is_multiple_of(20) {
            println!("{}", CpuLine::HEADER);
        }
        lines += 1;
        let now = CpuLine::of_kernel(k, &mib, &nic);
        println!("{}", now.line(&c.to_string(), &prev, 1));
        prev = now;
    };
    let mut on_tick = |k: &mut Kernel| {
        if let Some(ctl) = control.as_mut() {
            let now = k.cpu.last_switch();
            ctl.serve(&mib, k, now);
        }
    };
    let hooks = Hooks {
        observe: &mut observe,
        on_tick: &mut on_tick,
    };
    run_real(&mut k, &mut clock, stop, opts, hooks)
        .with_context(|| format!("CPU {c}: the scheduler's clock or epoll failed"))?;
    let text = report::summary(&mut k, &mib);
    Ok((text, report::Accounting::of(&k)))
}
