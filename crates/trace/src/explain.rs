//! One-line explanations of what a recorded event means, in English and
//! Korean, tagged with the concept id from CONCEPTS.md.

use crate::event::{CacheLevel, DnsOutcome, Event, WebAction};

/// The language of explanations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    Ko,
}

impl std::str::FromStr for Lang {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "en" => Ok(Lang::En),
            "ko" => Ok(Lang::Ko),
            other => Err(format!("unknown language {other:?} (use en or ko)")),
        }
    }
}

/// Why this step happens, in one line, or `None` for steps that need none.
pub fn explain(event: &Event, lang: Lang) -> Option<&'static str> {
    let (en, ko) = match event {
        Event::Navigate { .. } => (
            "C07 one request of the page; its stages follow",
            "C07 페이지를 이루는 요청 하나. 아래에 단계별 기록이 이어진다",
        ),
        Event::UrlParsed { .. } => (
            "C01 the browser splits the URL; the port comes from the scheme when absent, the #fragment stays local",
            "C01 브라우저가 URL을 나눈다. 포트가 없으면 스킴의 기본값을 쓰고 #프래그먼트는 서버로 보내지 않는다",
        ),
        Event::RequestPrepared { .. } => (
            "C02 the request line and headers, exactly as they will be written to the connection",
            "C02 연결에 그대로 쓰일 요청 줄과 헤더",
        ),
        Event::Lookup { .. } => (
            "C03 turning the host name into an address, asking the cheapest source first",
            "C03 호스트 이름을 주소로 바꾼다. 가장 가까운 곳부터 차례로 묻는다",
        ),
        Event::CacheLookup {
            level, hit: true, ..
        } => match level {
            CacheLevel::Resolver => (
                "C09 the resolver still holds this answer (TTL not expired), so no server is asked",
                "C09 리졸버에 TTL이 남은 답이 있어 다른 서버에 묻지 않는다",
            ),
            _ => (
                "C03 found at this level; the slower levels below are skipped",
                "C03 이 단계에서 찾았으므로 더 느린 다음 단계는 건너뛴다",
            ),
        },
        Event::CacheLookup { level, .. } => match level {
            CacheLevel::Resolver => (
                "C09 nothing cached (or the TTL ran out): the resolver must ask the hierarchy",
                "C09 캐시에 없거나 TTL이 지났다. 리졸버가 계층을 따라 물어야 한다",
            ),
            _ => (
                "C03 not at this level; try the next one",
                "C03 이 단계에는 없다. 다음 단계로 넘어간다",
            ),
        },
        Event::DnsExchange { outcome, .. } | Event::DnsServe { outcome, .. } => match outcome {
            DnsOutcome::Referral { .. } => (
                "C08 not my zone: the server points one level down (NS records plus glue addresses)",
                "C08 자기 영역이 아니므로 한 단계 아래를 맡은 서버(NS와 glue 주소)를 알려준다",
            ),
            DnsOutcome::Answer { .. } => (
                "C08 an answer for the name, carrying a TTL that says how long it may be cached",
                "C08 이름에 대한 답. TTL만큼 캐시에 둘 수 있다",
            ),
            DnsOutcome::NxDomain => (
                "C09 the name does not exist; this negative answer is cached too (SOA minimum)",
                "C09 존재하지 않는 이름. 이 부정 응답도 SOA 최소값만큼 캐시된다",
            ),
            DnsOutcome::NoData => (
                "C09 the name exists without this type; cached as a negative answer",
                "C09 이름은 있지만 그 타입의 레코드가 없다. 부정 응답으로 캐시된다",
            ),
            DnsOutcome::Truncated => (
                "C10 the answer did not fit in the UDP datagram; the asker repeats the query over TCP",
                "C10 응답이 UDP 데이터그램에 다 들어가지 않아 TCP로 다시 묻는다",
            ),
            DnsOutcome::FormErr => (
                "C10 the bytes were not a valid DNS message; the server says so and keeps running",
                "C10 올바른 DNS 메시지가 아니다. 서버는 오류를 알리고 계속 동작한다",
            ),
            _ => (
                "C10 the exchange failed; the asker tries another server or gives up",
                "C10 질의가 실패했다. 다른 서버를 시도하거나 포기한다",
            ),
        },
        Event::TcpConnect { .. } => (
            "C14 connect() returns once the kernel has done the 3-way handshake (its segments are not captured here; `weblab tcp handshake` shows them); TCP_INFO read right after",
            "C14 커널이 3-way 핸드셰이크를 마치면 connect()가 돌아온다(세그먼트 자체는 여기서 캡처하지 않는다. `weblab tcp handshake`가 보여 준다). 직후 커널의 TCP_INFO를 읽었다",
        ),
        Event::TcpInfo { .. } => (
            "C18 the kernel's view of the connection at the end: RTT estimate, congestion window, retransmissions",
            "C18 끝날 때 커널이 본 연결 상태: RTT 추정치, 혼잡 윈도, 재전송 수",
        ),
        Event::ConnectionReused { .. } => (
            "C25 keep-alive: no new handshake, the open connection carries this request",
            "C25 keep-alive: 새 핸드셰이크 없이 열린 연결로 요청을 보낸다",
        ),
        Event::TlsHandshake { .. } => (
            "C32 ClientHello/ServerHello agree on version, cipher and key exchange; the server's chain is checked against the trusted CA",
            "C32 ClientHello/ServerHello로 버전, 암호, 키 교환을 정하고 서버 인증서 체인을 신뢰하는 CA로 검증한다",
        ),
        Event::RequestSent { .. } => ("C07 the request is on the wire", "C07 요청을 연결에 썼다"),
        Event::Waiting { .. } => (
            "C07 time to first byte: the servers behind the address are working",
            "C07 첫 바이트까지의 대기: 주소 뒤의 서버들이 일하는 시간",
        ),
        Event::BodyReceived { .. } => (
            "C04 status, type and encoding read; the body arrives",
            "C04 상태 코드, 타입, 인코딩을 읽고 본문을 받는다",
        ),
        Event::Decoded { .. } => (
            "C31 the body was compressed for the wire; the client inflates it",
            "C31 전송을 위해 압축된 본문을 클라이언트가 푼다",
        ),
        Event::HtmlParsed { .. } => (
            "C05 the HTML names more resources; the browser fetches them in parallel",
            "C05 HTML에 적힌 추가 자원을 찾아 병렬로 가져온다",
        ),
        Event::HttpServe { .. } => (
            "C44 a server accepted the request and answered it",
            "C44 서버가 요청을 받아 응답했다",
        ),
        Event::LbPick { .. } => (
            "C43 the load balancer spreads requests over healthy backends by its algorithm",
            "C43 로드 밸런서가 알고리즘에 따라 살아 있는 백엔드에 요청을 나눈다",
        ),
        Event::WebDecision { action, .. } => match action {
            WebAction::Static { .. } => (
                "C51 a static file: the web server answers alone, the application server is not involved",
                "C51 정적 파일: 웹 서버가 혼자 응답하고 애플리케이션 서버는 관여하지 않는다",
            ),
            WebAction::Proxy { .. } => (
                "C51 dynamic content: the web server hands the request to an application server",
                "C51 동적 콘텐츠: 웹 서버가 요청을 애플리케이션 서버로 넘긴다",
            ),
            WebAction::Reject { .. } => (
                "C44 the web server refused the request itself",
                "C44 웹 서버가 요청을 직접 거절했다",
            ),
        },
        Event::ProxyForward { .. } => (
            "C44 a reverse proxy passes the request on, adding who the client really is (X-Forwarded-For, X-Real-IP)",
            "C44 리버스 프록시가 실제 클라이언트 정보(X-Forwarded-For, X-Real-IP)를 붙여 요청을 넘긴다",
        ),
        Event::HttpCache { outcome, .. } if outcome == "HIT" => (
            "C50 the cache server answered from its copy: still fresh, so the web server never saw the request",
            "C50 캐시 서버가 저장된 사본으로 답했다. 아직 신선하므로 웹 서버까지 가지 않았다",
        ),
        Event::HttpCache { outcome, .. } if outcome == "REVALIDATED" => (
            "C30 the copy was stale; the cache asked the origin with its validator and got 304, so the body did not travel again",
            "C30 사본이 오래되어 검증자로 원 서버에 물었고 304를 받아 본문을 다시 받지 않았다",
        ),
        Event::HttpCache { .. } => (
            "C50 the cache had no usable copy (or may not keep one): the request went on to the web server",
            "C50 캐시에 쓸 수 있는 사본이 없거나 저장할 수 없어 요청이 웹 서버로 넘어갔다",
        ),
        Event::Firewall { allowed: true, .. } => (
            "C50 the firewall let this client through: its address is allowed and it is within its request rate",
            "C50 방화벽이 이 클라이언트를 통과시켰다. 허용된 주소이고 요청 속도 한도 안에 있다",
        ),
        Event::Firewall { allowed: false, .. } => (
            "C50 the firewall refused: a rule matched the address, or the client went over its rate or connection limit",
            "C50 방화벽이 거절했다. 주소가 규칙에 걸렸거나 요청 속도나 연결 수 한도를 넘었다",
        ),
        Event::BackendHealth { up: false, .. } => (
            "C43 a backend failed its checks and leaves the rotation until it passes again",
            "C43 검사에 실패한 백엔드는 다시 통과할 때까지 분배 대상에서 빠진다",
        ),
        Event::BackendHealth { up: true, .. } => (
            "C43 a backend passed its checks and takes requests again",
            "C43 검사를 통과한 백엔드가 다시 요청을 받는다",
        ),
        Event::Tunnel { .. } => (
            "C42 after 101 Switching Protocols the proxies stop reading HTTP and relay raw bytes both ways",
            "C42 101 Switching Protocols 이후 프록시는 HTTP 해석을 멈추고 양방향으로 바이트를 그대로 전달한다",
        ),
        Event::Middleware { .. } => (
            "C45 one link of the middleware chain; each runs before the route and sees the response after",
            "C45 미들웨어 체인의 한 고리. 라우팅 전에 실행되고 응답을 다시 거친다",
        ),
        Event::Route { .. } => (
            "C46 the router matched the path to a pattern and called its controller",
            "C46 라우터가 경로를 패턴에 맞추고 해당 컨트롤러를 불렀다",
        ),
        Event::Service { .. } => (
            "C47 the controller delegates the business logic to a service",
            "C47 컨트롤러가 비즈니스 로직을 서비스에 맡긴다",
        ),
        Event::Sql { .. } => (
            "C47 the repository runs SQL against the database; this is the statement and its time",
            "C47 리포지토리가 데이터베이스에 실행한 SQL과 걸린 시간",
        ),
        Event::HttpCall { .. } => (
            "C47 the service is itself a client here: it calls another server's HTTP API and waits for its answer",
            "C47 여기서는 서비스가 클라이언트다. 다른 서버의 HTTP API를 호출하고 응답을 기다린다",
        ),
        Event::Foreign { .. } => (
            "a span sent over OTLP by another program that joined this trace through traceparent",
            "다른 프로그램이 traceparent로 이 트레이스에 합류해 OTLP로 보낸 스팬",
        ),
        Event::Note { .. } => return None,
    };
    Some(match lang {
        Lang::En => en,
        Lang::Ko => ko,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_lang_gets_its_own_text() {
        let e = Event::Route {
            pattern: "/login".into(),
            controller: "x".into(),
        };
        let en = explain(&e, Lang::En).unwrap();
        let ko = explain(&e, Lang::Ko).unwrap();
        assert!(en.starts_with("C46"));
        assert!(ko.starts_with("C46"));
        assert_ne!(en, ko);
        assert!(ko.chars().any(|c| ('\u{AC00}'..='\u{D7A3}').contains(&c)));
    }
}
