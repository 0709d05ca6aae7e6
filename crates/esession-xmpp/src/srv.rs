//! Where to connect when no server is given: the JID's domain through DNS SRV, with the records
//! of XEP-0368 (direct TLS) beside those of RFC 6120 (STARTTLS).
//!
//! XEP-0368 §3: `_xmpps-client._tcp` records name direct-TLS ports and `_xmpp-client._tcp`
//! records STARTTLS ports; both sets are one set for the connection order of RFC 2782
//! (priorities and weights mixed), and a client "MAY choose to prefer one type of connection
//! over the other". Here: the lowest priority first (RFC 2782); within one priority, the
//! direct-TLS records before the STARTTLS ones (the preference §3 allows: no clear-text
//! stream header before TLS); within one priority and kind, RFC 2782's weighted random
//! order. A target `.` says the service is decidedly not available there (RFC 2782): it is
//! skipped, and when every record says so nothing is tried. No record at all: the domain
//! itself on port 5222 with STARTTLS (RFC 6120 §3.2.2). At most [`TARGETS_MAX`] places are tried.
//!
//! [`order`] is the whole rule and does no I/O; [`lookup`] asks the resolver for both record
//! sets (feature `starttls`, which brings it).

/// One SRV record (RFC 2782) of either service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// `_xmpps-client._tcp` (direct TLS) rather than `_xmpp-client._tcp` (STARTTLS).
    pub(crate) direct: bool,
    pub(crate) priority: u16,
    pub(crate) weight: u16,
    pub(crate) port: u16,
    /// The target host, as the record gives it (`.`: no service there).
    pub(crate) target: String,
}

/// One place to try, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) host: String,
    pub(crate) port: u16,
    /// Direct TLS (TLS from the first octet); otherwise STARTTLS.
    pub(crate) direct: bool,
}

/// Every record's target is `.`: the domain says it offers no client service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NoService;

/// The port of XMPP client connections with STARTTLS (RFC 6120 §14.7).
const CLIENT_PORT: u16 = 5222;

/// The most places tried for one connection: a DNS answer may list thousands of targets, and
/// each one that does not answer costs a connection attempt (reconnections have no deadline).
pub(crate) const TARGETS_MAX: usize = 16;

/// The places to try for `domain`, in order, from the records of both services (see the
/// module's documentation for the rule). `pick(total)` draws a number in `0..=total` for the
/// weighted order of RFC 2782 (random in use; fixed in tests).
pub(crate) fn order(
    records: Vec<Record>,
    domain: &str,
    pick: &mut dyn FnMut(u32) -> u32,
) -> Result<Vec<Target>, NoService> {
    if records.is_empty() {
        return Ok(vec![Target { host: domain.to_owned(), port: CLIENT_PORT, direct: false }]);
    }
    let mut usable: Vec<Record> = records.into_iter().filter(|r| r.target != ".").collect();
    if usable.is_empty() {
        return Err(NoService);
    }
    // Lowest priority first; direct TLS first within a priority; weight 0 first within a
    // group (RFC 2782 puts them at the beginning of the list before the weighted draw).
    usable.sort_by_key(|r| (r.priority, !r.direct, r.weight != 0));
    let mut out = Vec::with_capacity(usable.len());
    let mut rest = usable.as_slice();
    while let Some(first) = rest.first() {
        let n = rest.iter().take_while(|r| (r.priority, r.direct) == (first.priority, first.direct)).count();
        let (group, tail) = rest.split_at(n);
        out.extend(weighted(group.to_vec(), pick).into_iter().map(|r| Target {
            host: r.target,
            port: r.port,
            direct: r.direct,
        }));
        rest = tail;
    }
    out.truncate(TARGETS_MAX);
    Ok(out)
}

/// RFC 2782's selection within one priority: repeatedly draw a number in `0..=sum of the
/// weights left` and take the first record whose running sum reaches it.
fn weighted(mut group: Vec<Record>, pick: &mut dyn FnMut(u32) -> u32) -> Vec<Record> {
    let mut out = Vec::with_capacity(group.len());
    while !group.is_empty() {
        let total: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
        let draw = pick(total).min(total);
        let mut sum = 0u32;
        let i = group
            .iter()
            .position(|r| {
                sum += u32::from(r.weight);
                sum >= draw
            })
            .unwrap_or(0);
        out.push(group.remove(i));
    }
    out
}

/// The SRV records of both services for `domain` (a failed lookup, such as NXDOMAIN, counts
/// as no records), from `nameserver` when one is given ([`crate::Options::dns`]), else from the
/// system's resolver configuration.
///
/// # Errors
/// The system's resolver configuration cannot be read.
#[cfg(feature = "starttls")]
pub(crate) async fn lookup(
    domain: &str,
    nameserver: Option<std::net::SocketAddr>,
) -> Result<Vec<Record>, tokio_xmpp::Error> {
    use hickory_resolver::config::{NameServerConfig, ResolverConfig};
    use hickory_resolver::net::runtime::TokioRuntimeProvider;
    use hickory_resolver::proto::rr::RData;
    let builder = match nameserver {
        // The one server given: UDP, then TCP for an answer too large for it.
        Some(at) => {
            let mut ns = NameServerConfig::udp_and_tcp(at.ip());
            for c in &mut ns.connections {
                c.port = at.port();
            }
            Ok(hickory_resolver::TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(vec![ns]),
                TokioRuntimeProvider::default(),
            ))
        }
        None => hickory_resolver::TokioResolver::builder_tokio(),
    };
    let resolver = builder
        .and_then(hickory_resolver::ResolverBuilder::build)
        .map_err(|e| tokio_xmpp::Error::Io(std::io::Error::other(e)))?;
    let mut records = Vec::new();
    for (service, direct) in [("_xmpps-client._tcp", true), ("_xmpp-client._tcp", false)] {
        let name = format!("{service}.{domain}.");
        let Ok(found) = resolver.srv_lookup(name.as_str()).await else {
            tracing::debug!(service, "no SRV record");
            continue;
        };
        for r in found.answers() {
            if let RData::SRV(srv) = &r.data {
                records.push(Record {
                    direct,
                    priority: srv.priority,
                    weight: srv.weight,
                    port: srv.port,
                    // A target is a fully qualified name (`host.example.org.`): connected to
                    // without its final dot, which the system's resolver and TLS names do not
                    // take. `.` alone stays: no service there.
                    target: match srv.target.to_ascii() {
                        t if t == "." => t,
                        t => t.trim_end_matches('.').to_owned(),
                    },
                });
            }
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rec(direct: bool, priority: u16, weight: u16, target: &str) -> Record {
        Record { direct, priority, weight, port: if direct { 5223 } else { 5222 }, target: target.into() }
    }

    fn hosts(t: &[Target]) -> Vec<(&str, bool)> {
        t.iter().map(|t| (t.host.as_str(), t.direct)).collect()
    }

    /// Draws always 0: the first record of each draw (weight order as sorted).
    fn first(_: u32) -> u32 {
        0
    }

    #[test]
    fn at_most_targets_max_places_are_tried_the_first_ones_in_order() {
        let records: Vec<Record> = (0..1000u16).map(|p| rec(false, p, 0, &format!("h{p}."))).collect();
        let t = order(records, "example.org", &mut first).unwrap();
        assert_eq!(t.len(), TARGETS_MAX);
        assert_eq!((t[0].host.as_str(), t[TARGETS_MAX - 1].host.as_str()), ("h0.", "h15."));
    }

    #[test]
    fn no_record_falls_back_to_the_domain_with_starttls_on_5222() {
        let t = order(vec![], "example.org", &mut first).unwrap();
        assert_eq!(t, [Target { host: "example.org".into(), port: 5222, direct: false }]);
    }

    #[test]
    fn at_equal_priority_direct_tls_is_tried_first_then_starttls() {
        let records = vec![rec(false, 10, 0, "c2s.example.org."), rec(true, 10, 0, "tls.example.org.")];
        let t = order(records, "example.org", &mut first).unwrap();
        assert_eq!(hosts(&t), [("tls.example.org.", true), ("c2s.example.org.", false)]);
        assert_eq!((t[0].port, t[1].port), (5223, 5222));
    }

    #[test]
    fn only_starttls_records_are_used_with_starttls() {
        let records = vec![rec(false, 5, 0, "a.example.org."), rec(false, 7, 0, "b.example.org.")];
        let t = order(records, "example.org", &mut first).unwrap();
        assert_eq!(hosts(&t), [("a.example.org.", false), ("b.example.org.", false)]);
    }

    #[test]
    fn priorities_of_both_services_are_mixed_lowest_first() {
        // XEP-0368 §3: one set for the order of RFC 2782; the operator's priorities win over
        // the preference for direct TLS.
        let records = vec![
            rec(true, 20, 0, "tls-backup."),
            rec(false, 10, 0, "c2s-main."),
            rec(true, 5, 0, "tls-main."),
            rec(false, 30, 0, "c2s-backup."),
        ];
        let t = order(records, "example.org", &mut first).unwrap();
        assert_eq!(
            hosts(&t),
            [("tls-main.", true), ("c2s-main.", false), ("tls-backup.", true), ("c2s-backup.", false)]
        );
    }

    #[test]
    fn a_dot_target_is_skipped_and_only_dots_mean_no_service() {
        let records = vec![rec(true, 0, 0, "."), rec(false, 10, 0, "c2s.example.org.")];
        let t = order(records, "example.org", &mut first).unwrap();
        assert_eq!(hosts(&t), [("c2s.example.org.", false)]);
        assert_eq!(order(vec![rec(false, 0, 0, ".")], "example.org", &mut first), Err(NoService));
    }

    #[test]
    fn weights_order_records_of_one_priority_as_rfc_2782_draws() {
        // Sorted weight 0 first: zero (0), heavy (3), light (1); running sums 0, 3, 4. A draw
        // of 4 takes light; then (zero, heavy: sums 0, 3) a draw of 1 takes heavy; zero last.
        let records = vec![rec(false, 1, 3, "heavy."), rec(false, 1, 0, "zero."), rec(false, 1, 1, "light.")];
        let mut draws = vec![4, 1, 0].into_iter();
        let mut totals = Vec::new();
        let mut pick = |total: u32| {
            totals.push(total);
            draws.next().unwrap()
        };
        let t = order(records, "example.org", &mut pick).unwrap();
        assert_eq!(hosts(&t), [("light.", false), ("heavy.", false), ("zero.", false)]);
        assert_eq!(totals, [4, 3, 0]);
        // Draw 0 every time: weight 0 first (RFC 2782 puts them first), then by the list.
        let records = vec![rec(false, 1, 3, "heavy."), rec(false, 1, 0, "zero."), rec(false, 1, 1, "light.")];
        let t = order(records, "example.org", &mut first).unwrap();
        assert_eq!(hosts(&t), [("zero.", false), ("heavy.", false), ("light.", false)]);
    }
}

/// [`lookup`] against a DNS server of the test's own ([`crate::Options::dns`]): both services
/// asked, the records read as given, targets without their final dot, `.` kept.
#[cfg(all(test, feature = "starttls"))]
mod lookup_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn both_services_are_asked_of_the_given_server_and_read_as_given() {
        let server = dns::Server::start(&[
            ("_xmpps-client._tcp.example.test.", (5, 0, 5223, "tls.example.test.")),
            ("_xmpps-client._tcp.example.test.", (10, 3, 443, "backup.example.test.")),
            ("_xmpp-client._tcp.example.test.", (20, 0, 5222, "c2s.example.test.")),
            ("_xmpp-client._tcp.none.test.", (0, 0, 0, ".")),
        ]);
        let mut got = lookup("example.test", Some(server.addr)).await.unwrap();
        got.sort_by_key(|r| r.priority);
        let want = [
            Record { direct: true, priority: 5, weight: 0, port: 5223, target: "tls.example.test".into() },
            Record { direct: true, priority: 10, weight: 3, port: 443, target: "backup.example.test".into() },
            Record { direct: false, priority: 20, weight: 0, port: 5222, target: "c2s.example.test".into() },
        ];
        assert_eq!(got, want);
        let asked = server.asked.lock().unwrap().clone();
        for service in ["_xmpps-client._tcp.example.test.", "_xmpp-client._tcp.example.test."] {
            assert!(asked.iter().any(|q| q == service), "{service} not asked: {asked:?}");
        }
        // "No service here" stays `.`, for `order` to refuse; no records at all (NXDOMAIN):
        // nothing, for `order` to fall back to the domain on 5222.
        let none = lookup("none.test", Some(server.addr)).await.unwrap();
        assert_eq!(none.iter().map(|r| r.target.as_str()).collect::<Vec<_>>(), ["."]);
        assert_eq!(order(none, "none.test", &mut |_| 0), Err(NoService));
        assert!(lookup("unknown.test", Some(server.addr)).await.unwrap().is_empty());
    }
}

/// A DNS server on loopback for the tests: it answers SRV questions from `records` (name
/// → (priority, weight, port, target)), NXDOMAIN for any other name, and counts the
/// questions it was asked.
#[cfg(all(test, feature = "starttls"))]
mod dns {
    #![allow(clippy::unwrap_used)]
    use std::collections::HashMap;
    use std::net::UdpSocket;
    use std::sync::{Arc, Mutex};

    pub(crate) type Srv = (u16, u16, u16, &'static str);

    pub(crate) struct Server {
        pub(crate) addr: std::net::SocketAddr,
        pub(crate) asked: Arc<Mutex<Vec<String>>>,
    }

    fn name(packet: &[u8], mut at: usize) -> Option<(String, usize)> {
        let mut labels = Vec::new();
        loop {
            let len = usize::from(*packet.get(at)?);
            at += 1;
            if len == 0 {
                return Some((labels.join(".").to_ascii_lowercase() + ".", at));
            }
            labels.push(String::from_utf8_lossy(packet.get(at..at + len)?).into_owned());
            at += len;
        }
    }

    fn push_name(out: &mut Vec<u8>, name: &str) {
        for label in name.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
            out.push(u8::try_from(label.len()).unwrap());
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
    }

    /// The answer to one query, or None for a packet that is not one.
    fn answer(q: &[u8], records: &HashMap<String, Vec<Srv>>) -> Option<(String, Vec<u8>)> {
        let (qname, end) = name(q, 12)?;
        let qtype = u16::from_be_bytes([*q.get(end)?, *q.get(end + 1)?]);
        let found: &[Srv] = if qtype == 33 { records.get(&qname).map_or(&[], Vec::as_slice) } else { &[] };
        let known = records.contains_key(&qname);
        let mut out = Vec::new();
        out.extend_from_slice(&q[..2]);
        // A response, recursion desired and available; NXDOMAIN for a name we do not hold.
        out.extend_from_slice(&[0x81, if known { 0x80 } else { 0x83 }]);
        out.extend_from_slice(&[0, 1]);
        out.extend_from_slice(&u16::try_from(found.len()).unwrap().to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(&q[12..end + 4]);
        for (priority, weight, port, target) in found {
            let mut rdata = Vec::new();
            for v in [priority, weight, port] {
                rdata.extend_from_slice(&v.to_be_bytes());
            }
            push_name(&mut rdata, target);
            out.extend_from_slice(&[0xc0, 12, 0, 33, 0, 1, 0, 0, 0, 60]);
            out.extend_from_slice(&u16::try_from(rdata.len()).unwrap().to_be_bytes());
            out.extend_from_slice(&rdata);
        }
        Some((qname, out))
    }

    impl Server {
        pub(crate) fn start(records: &[(&str, Srv)]) -> Self {
            let mut map: HashMap<String, Vec<Srv>> = HashMap::new();
            for (n, r) in records {
                map.entry((*n).to_owned()).or_default().push(*r);
            }
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            let addr = socket.local_addr().unwrap();
            let asked = Arc::new(Mutex::new(Vec::new()));
            let log = asked.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 1500];
                while let Ok((n, from)) = socket.recv_from(&mut buf) {
                    if let Some((qname, out)) = answer(&buf[..n], &map) {
                        log.lock().unwrap().push(qname);
                        let _ = socket.send_to(&out, from);
                    }
                }
            });
            Self { addr, asked }
        }
    }
}
