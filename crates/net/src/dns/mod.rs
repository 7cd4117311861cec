//! The cluster DNS server, built in: every node answers on the cluster DNS address itself
//! (which lies in the service range, routed locally on the node), from a [`Zone`] the agent
//! rebuilds as Services and EndpointSlices change. Names outside the cluster domain go to the
//! configured upstream servers, or are refused when there are none (the default in tests: no
//! query leaves the machine).
//!
//! The transport (UDP and TCP, message parsing and writing) is hickory-server's; this module
//! holds the lookup glue.

pub mod zone;

use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Header, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, PTR, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_server::ServerFuture;
use hickory_server::authority::MessageResponseBuilder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};

pub use zone::{Answer, DnsEndpoint, DnsService, Lookup, QueryType, ServiceKind, Zone};

/// Seconds clients may cache an answer (CoreDNS's kubernetes plugin default).
const TTL: u32 = 5;

/// How long an upstream server gets to answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// A failure to start the DNS server.
#[derive(Debug, thiserror::Error)]
#[error("DNS server on {address}: {source}")]
pub struct DnsError {
    pub address: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// The names the server answers, replaced as a whole on every change.
#[derive(Debug, Clone, Default)]
pub struct SharedZone(Arc<RwLock<Arc<Zone>>>);

impl SharedZone {
    pub fn replace(&self, zone: Zone) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(zone);
    }

    fn current(&self) -> Arc<Zone> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

struct Handler {
    zone: SharedZone,
    upstreams: Vec<SocketAddr>,
}

/// Serve DNS on `address` (UDP and TCP) until the task is dropped.
pub async fn serve(
    address: SocketAddr,
    zone: SharedZone,
    upstreams: Vec<SocketAddr>,
) -> Result<tokio::task::JoinHandle<()>, DnsError> {
    let error = |source| DnsError { address, source };
    let udp = tokio::net::UdpSocket::bind(address).await.map_err(error)?;
    let tcp = tokio::net::TcpListener::bind(address)
        .await
        .map_err(error)?;
    let mut server = ServerFuture::new(Handler { zone, upstreams });
    server.register_socket(udp);
    server.register_listener(tcp, Duration::from_secs(10));
    Ok(tokio::spawn(async move {
        if let Err(err) = server.block_until_done().await {
            tracing::error!(%err, %address, "the DNS server stopped");
        }
    }))
}

fn query_type(t: RecordType) -> QueryType {
    match t {
        RecordType::A => QueryType::A,
        RecordType::AAAA => QueryType::Aaaa,
        RecordType::SRV => QueryType::Srv,
        RecordType::PTR => QueryType::Ptr,
        RecordType::CNAME => QueryType::Cname,
        RecordType::ANY => QueryType::Any,
        _ => QueryType::Other,
    }
}

fn record(name: &str, answer: &Answer) -> Option<Record> {
    let owner = Name::from_str(&format!("{name}.")).ok()?;
    let target = |t: &str| Name::from_str(&format!("{}.", t.trim_end_matches('.'))).ok();
    let rdata = match answer {
        Answer::A(ip) => RData::A(A(*ip)),
        Answer::Cname(t) => RData::CNAME(CNAME(target(t)?)),
        Answer::Ptr(t) => RData::PTR(PTR(target(t)?)),
        Answer::Srv { port, target: t } => RData::SRV(SRV::new(0, 100, *port, target(t)?)),
    };
    Some(Record::from_rdata(owner, TTL, rdata))
}

/// Answers for SRV targets and CNAMEs that the zone knows (so clients need no second query).
fn additionals(zone: &Zone, answers: &[(String, Answer)]) -> Vec<Record> {
    let mut extra = Vec::new();
    for (_, answer) in answers {
        if let Answer::Srv { target, .. } = answer
            && let Lookup::Found(found) = zone.lookup(target, QueryType::A)
        {
            extra.extend(found.iter().filter_map(|(n, a)| record(n, a)));
        }
    }
    extra
}

/// Ask the upstream servers in turn; the first answer wins.
async fn forward(upstreams: &[SocketAddr], query: &Query) -> Option<Message> {
    let mut message = Message::new();
    message
        .set_id(rand_id())
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(query.clone());
    let bytes = message.to_vec().ok()?;
    for upstream in upstreams {
        let local: SocketAddr = if upstream.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let Ok(socket) = tokio::net::UdpSocket::bind(local).await else {
            continue;
        };
        if socket.send_to(&bytes, upstream).await.is_err() {
            continue;
        }
        let mut buffer = vec![0u8; 4096];
        let received = tokio::time::timeout(UPSTREAM_TIMEOUT, socket.recv_from(&mut buffer)).await;
        if let Ok(Ok((n, from))) = received
            && from == *upstream
            && let Ok(reply) = Message::from_vec(&buffer[..n])
            && reply.id() == message.id()
        {
            return Some(reply);
        }
    }
    None
}

fn rand_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default(),
    );
    hasher.finish() as u16
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let builder = MessageResponseBuilder::from_message_request(request);
        let mut header = Header::response_from_request(request.header());
        header.set_recursion_available(!self.upstreams.is_empty());
        let info = match request.request_info() {
            Ok(info) if request.op_code() == OpCode::Query => info,
            _ => {
                let reply = builder.error_msg(request.header(), ResponseCode::FormErr);
                return response
                    .send_response(reply)
                    .await
                    .unwrap_or_else(|_| header.into());
            }
        };
        let name = info.query.name().to_string();
        let qtype = info.query.query_type();
        let zone = self.zone.current();
        let (code, answers, extra, authoritative) = match zone.lookup(&name, query_type(qtype)) {
            Lookup::Found(found) => {
                let records: Vec<Record> = found.iter().filter_map(|(n, a)| record(n, a)).collect();
                (
                    ResponseCode::NoError,
                    records,
                    additionals(&zone, &found),
                    true,
                )
            }
            Lookup::NoSuchName => (ResponseCode::NXDomain, vec![], vec![], true),
            Lookup::Outside if self.upstreams.is_empty() => {
                (ResponseCode::Refused, vec![], vec![], false)
            }
            Lookup::Outside => {
                let query = Query::query(info.query.name().into(), qtype);
                match forward(&self.upstreams, &query).await {
                    Some(reply) => (
                        reply.response_code(),
                        reply.answers().to_vec(),
                        vec![],
                        false,
                    ),
                    None => (ResponseCode::ServFail, vec![], vec![], false),
                }
            }
        };
        header.set_authoritative(authoritative);
        header.set_response_code(code);
        let reply = builder.build(header, answers.iter(), &[], &[], extra.iter());
        match response.send_response(reply).await {
            Ok(info) => info,
            Err(err) => {
                tracing::debug!(%err, "sending a DNS answer failed");
                header.set_response_code(ResponseCode::ServFail);
                header.into()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn ask(server: SocketAddr, name: &str, qtype: RecordType) -> Message {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut message = Message::new();
        message
            .set_id(7)
            .set_recursion_desired(true)
            .add_query(Query::query(Name::from_str(name).unwrap(), qtype));
        socket
            .send_to(&message.to_vec().unwrap(), server)
            .await
            .unwrap();
        let mut buffer = vec![0u8; 4096];
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buffer))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        Message::from_vec(&buffer[..n]).unwrap()
    }

    #[tokio::test]
    async fn answers_over_udp_and_refuses_the_rest_of_the_world() {
        let address = free_address();
        let zone = SharedZone::default();
        let server = serve(address, zone.clone(), vec![]).await.unwrap();
        let api = DnsService {
            namespace: "shop".into(),
            name: "api".into(),
            kind: ServiceKind::Virtual(vec![Ipv4Addr::new(10, 43, 0, 20)]),
            ports: vec![("http".into(), "tcp".into(), 80)],
            endpoints: vec![],
            publish_not_ready: false,
        };
        zone.replace(Zone::build("cluster.local", &[api]));

        let reply = ask(address, "api.shop.svc.cluster.local.", RecordType::A).await;
        assert_eq!(reply.response_code(), ResponseCode::NoError);
        assert!(reply.authoritative());
        let ips: Vec<String> = reply
            .answers()
            .iter()
            .map(|r| r.data().to_string())
            .collect();
        assert_eq!(ips, ["10.43.0.20"]);

        let srv = ask(
            address,
            "_http._tcp.api.shop.svc.cluster.local.",
            RecordType::SRV,
        )
        .await;
        assert_eq!(srv.answers().len(), 1);
        assert_eq!(
            srv.additionals().len(),
            1,
            "the target's address comes along"
        );

        let missing = ask(address, "web.shop.svc.cluster.local.", RecordType::A).await;
        assert_eq!(missing.response_code(), ResponseCode::NXDomain);
        let outside = ask(address, "example.com.", RecordType::A).await;
        assert_eq!(outside.response_code(), ResponseCode::Refused);
        server.abort();
    }

    fn free_address() -> SocketAddr {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        (Ipv4Addr::LOCALHOST, port).into()
    }

    /// Names outside the cluster domain go to the upstream server (here a second server of this
    /// module, authoritative for `example.test`), whose answer comes back.
    #[tokio::test]
    async fn forwards_other_names_upstream() {
        let upstream = free_address();
        let upstream_zone = SharedZone::default();
        upstream_zone.replace(Zone::build(
            "example.test",
            &[DnsService {
                namespace: "corp".into(),
                name: "wiki".into(),
                kind: ServiceKind::Virtual(vec![Ipv4Addr::new(192, 0, 2, 80)]),
                ports: vec![],
                endpoints: vec![],
                publish_not_ready: false,
            }],
        ));
        let upstream_task = serve(upstream, upstream_zone, vec![]).await.unwrap();
        let address = free_address();
        let server = serve(address, SharedZone::default(), vec![upstream])
            .await
            .unwrap();
        let reply = ask(address, "wiki.corp.svc.example.test.", RecordType::A).await;
        assert_eq!(reply.response_code(), ResponseCode::NoError);
        assert!(!reply.authoritative(), "a forwarded answer is not ours");
        let ips: Vec<String> = reply
            .answers()
            .iter()
            .map(|r| r.data().to_string())
            .collect();
        assert_eq!(ips, ["192.0.2.80"]);
        let missing = ask(address, "nothing.corp.svc.example.test.", RecordType::A).await;
        assert_eq!(missing.response_code(), ResponseCode::NXDomain);
        server.abort();
        upstream_task.abort();
    }
}
