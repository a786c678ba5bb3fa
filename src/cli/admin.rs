//! The commands that talk to a running instance through its control
//! socket: `pollsim sysctl`, `pollsim ifconfig`, `pollsim stat`,
//! `pollsim netstat -s`.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use pollsim_sysctl::client::Client;
use pollsim_sysctl::proto::{NodeView, Request};
use pollsim_sysctl::{Value, cmd};

use crate::ctl::socket_path;
use crate::kernel::netstat;
use crate::kernel::time::Nanos;
use crate::report::{self, Snapshot};

/// Connect to instance `name`, or the one-line reason why not.
fn connect(name: &str) -> anyhow::Result<Client> {
    let path = socket_path(name);
    Client::connect(&path).map_err(|_| {
        anyhow::anyhow!(
            "no instance '{name}' (is pollsim run running? socket {})",
            path.display()
        )
    })
}

/// `pollsim sysctl ARGS...`: sysctl(8) against a running instance. The exit
/// status is sysctl's: the number of failed arguments, 1 for usage errors.
pub fn sysctl(args: &[String]) -> ExitCode {
    let inv = match cmd::parse_args(args) {
        Ok(inv) => inv,
        Err(usage) => {
            eprintln!("{usage}");
            return ExitCode::from(1);
        }
    };
    let mut client = match connect(&inv.instance) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pollsim: {e}");
            return ExitCode::from(1);
        }
    };
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    let code = cmd::execute(&inv, &mut client, &mut out, &mut err);
    let _ = out.flush();
    ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(255))
}

fn call(c: &mut Client, req: &Request) -> anyhow::Result<Vec<NodeView>> {
    let reply = c.call(req).map_err(|e| anyhow::anyhow!("{e}"))?;
    match reply.error {
        Some(e) if !reply.ok => bail!("{}", e.message),
        _ => Ok(reply.nodes),
    }
}

fn value_of(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Number(n) => Value::Int(n.as_i64().unwrap_or(0)),
        serde_json::Value::Array(a) => Value::List(a.iter().filter_map(|x| x.as_u64()).collect()),
        other => Value::Str(other.as_str().unwrap_or_default().to_string()),
    }
}

/// `pollsim ifconfig IF [polling|-polling]`: sugar for `dev.IF.polling`,
/// printed as FreeBSD's ifconfig prints an interface.
pub fn ifconfig(name: &str, ifname: &str, action: Option<&str>) -> anyhow::Result<()> {
    let mut c = connect(name)?;
    let node = format!("dev.{ifname}.polling");
    match action {
        None => {}
        Some("polling") => drop(call(&mut c, &Request::set(&node, "1"))?),
        Some("-polling") => drop(call(&mut c, &Request::set(&node, "0"))?),
        Some(other) => bail!("ifconfig: unknown option '{other}' (polling or -polling)"),
    }
    let nodes = call(&mut c, &Request::get(&format!("dev.{ifname}")))
        .with_context(|| format!("interface {ifname}"))?;
    let get = |leaf: &str| {
        nodes
            .iter()
            .find(|n| n.name == format!("dev.{ifname}.{leaf}"))
            .map(NodeView::value_text)
            .unwrap_or_default()
    };
    print!(
        "{}",
        ifconfig_text(
            ifname,
            &get("polling"),
            &get("link_up"),
            &get("ether"),
            &get("inet")
        )
    );
    Ok(())
}

/// The interface block, FreeBSD style (IFCAP_POLLING is 0x40).
fn ifconfig_text(ifname: &str, polling: &str, link_up: &str, ether: &str, inet: &str) -> String {
    let up = link_up == "1";
    let (flags, names) = if up {
        (0x8843, "UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST")
    } else {
        (0x8803, "UP,BROADCAST,SIMPLEX,MULTICAST")
    };
    let mut s = format!("{ifname}: flags={flags:x}<{names}> metric 0 mtu 1500\n");
    if polling == "1" {
        s.push_str("\toptions=40<POLLING>\n");
    }
    s.push_str(&format!("\tether {ether}\n"));
    for cidr in inet.split_whitespace() {
        if let Some((ip, len)) = cidr.split_once('/') {
            let len: u32 = len.parse().unwrap_or(32);
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            s.push_str(&format!("\tinet {ip} netmask 0x{mask:08x}\n"));
        }
    }
    s.push_str(&format!(
        "\tstatus: {}\n",
        if up { "active" } else { "no carrier" }
    ));
    s
}

/// `pollsim stat`: a netstat -w style view of a running instance, from its
/// MIB alone: rates over each interval, a header every 20 lines.
pub fn stat(name: &str, wait: f64, count: Option<u64>) -> anyhow::Result<()> {
    if !(wait.is_finite() && wait > 0.0) {
        bail!("-w {wait}: must be a positive number of seconds");
    }
    let start = Instant::now();
    // A connection per sample: the instance closes a client that stays
    // silent for ctl::CLIENT_IDLE, which a long -w interval would be.
    let sample = || -> anyhow::Result<Snapshot> {
        let mut c = connect(name)?;
        let nodes = call(&mut c, &Request::get(""))?;
        let dump: Vec<(String, Value)> = nodes
            .iter()
            .map(|n| (n.name.clone(), value_of(&n.value)))
            .collect();
        let at = Nanos(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX));
        Ok(Snapshot::from_dump(at, &dump))
    };
    let ncpu = call(&mut connect(name)?, &Request::get("hw.ncpu"))?
        .first()
        .and_then(|n| n.value.as_u64())
        .map_or(1, |n| usize::try_from(n).unwrap_or(1));
    if ncpu > 1 {
        return stat_cpus(name, ncpu, wait, count);
    }
    let mut prev = sample()?;
    let mut printed = 0u64;
    while count.is_none_or(|n| printed < n) {
        std::thread::sleep(Duration::from_secs_f64(wait));
        let snap = sample()?;
        if printed.is_multiple_of(20) {
            println!("{}", report::header_for(&snap));
        }
        println!("{}", report::line(&prev, &snap));
        prev = snap;
        printed += 1;
    }
    Ok(())
}

/// `pollsim stat` of an instance of several CPUs (`run --cpus N`): each
/// interval, a line per CPU (read from its own control socket, `NAME` for
/// CPU 0, `NAME-cpuC` for the others) and one for all of them.
fn stat_cpus(name: &str, ncpu: usize, wait: f64, count: Option<u64>) -> anyhow::Result<()> {
    use super::cpu_line::CpuLine;
    let sample = || -> anyhow::Result<Vec<CpuLine>> {
        (0..ncpu)
            .map(|c| {
                let mut client = connect(&super::run_smp::cpu_name(name, c))?;
                let nodes = call(&mut client, &Request::get(""))?;
                let nic = nodes
                    .iter()
                    .find_map(|n| {
                        n.name
                            .strip_prefix("dev.")
                            .and_then(|r| r.strip_suffix(".rx_packets"))
                            .map(str::to_string)
                    })
                    .unwrap_or_default();
                let get = |n: &str| {
                    nodes
                        .iter()
                        .find(|v| v.name == n)
                        .map(|v| value_of(&v.value))
                };
                Ok(CpuLine::from_nodes(&get, &nic))
            })
            .collect()
    };
    let mut prev = sample()?;
    let mut printed = 0u64;
    while count.is_none_or(|n| printed < n) {
        std::thread::sleep(Duration::from_secs_f64(wait));
        let now = sample()?;
        if printed.is_multiple_of(20) {
            println!("{}", CpuLine::HEADER);
        }
        for (c, (a, b)) in prev.iter().zip(&now).enumerate() {
            println!("{}", b.line(&c.to_string(), a, 1));
        }
        println!(
            "{}",
            CpuLine::sum(&now).line("all", &CpuLine::sum(&prev), ncpu)
        );
        prev = now;
        printed += 1;
    }
    Ok(())
}

/// `pollsim netstat -s [--json]`: the per-cause input counters of a
/// running instance, read from its `net.inet.*.stats.*` and
/// `net.link.ether.*` nodes, in FreeBSD netstat -s's text or as JSON.
pub fn netstat(name: &str, json: bool) -> anyhow::Result<()> {
    let mut c = connect(name)?;
    let mut nodes = call(&mut c, &Request::get("net.inet"))?;
    nodes.extend(call(&mut c, &Request::get("net.link.ether"))?);
    let stats = netstat::from_nodes(|n| {
        nodes
            .iter()
            .find(|v| v.name == n)
            .and_then(|v| v.value.as_u64())
    });
    if json {
        println!("{}", netstat::json(&stats));
    } else {
        print!("{}", netstat::text(&stats));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifconfig_shows_polling_as_freebsd_does() {
        let t = ifconfig_text("tap0", "1", "1", "02:00:c6:12:00:02", "198.18.0.2/24");
        assert_eq!(
            t,
            "tap0: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> metric 0 mtu 1500\n\
             \toptions=40<POLLING>\n\tether 02:00:c6:12:00:02\n\
             \tinet 198.18.0.2 netmask 0xffffff00\n\tstatus: active\n"
        );
        let t = ifconfig_text("tap0", "0", "0", "x", "");
        assert!(!t.contains("POLLING") && t.contains("no carrier"));
    }
}
