//! Every event's line in Korean (`--lang ko`): the same facts as the
//! English `Display`, in Korean word order. Protocol tokens (methods,
//! status codes, header names, DNS types, state names) stay as they appear
//! on the wire; free text a component recorded (a reason, a note) is kept
//! as recorded.

use std::fmt::Write as _;

use crate::event::{CacheLevel, DnsOutcome, Event, WebAction, rate_text, ssthresh_text};
use crate::explain::Lang;

/// `event` as a line in `lang`.
pub fn said(event: &Event, lang: Lang) -> String {
    match lang {
        Lang::En => event.to_string(),
        Lang::Ko => ko(event),
    }
}

/// A cache level's Korean name.
pub fn level(l: CacheLevel) -> &'static str {
    match l {
        CacheLevel::Browser => "브라우저 캐시",
        CacheLevel::Hosts => "hosts 파일",
        CacheLevel::Os => "OS 캐시",
        CacheLevel::Resolver => "리졸버 캐시",
    }
}

/// A DNS server's role as the world file names it, in Korean where the
/// role is one of the usual ones ("root server", "TLD server (test.)").
fn role(r: &str) -> String {
    const ROLES: [(&str, &str); 4] = [
        ("recursive resolver", "재귀 리졸버"),
        ("root server", "루트 서버"),
        ("TLD server", "TLD 서버"),
        ("authoritative server", "권한 서버"),
    ];
    for (en, ko) in ROLES {
        if let Some(rest) = r.strip_prefix(en) {
            return format!("{ko}{rest}");
        }
    }
    r.to_string()
}

fn outcome(o: &DnsOutcome) -> String {
    match o {
        DnsOutcome::Answer { records } => format!("응답 {}", records.join(", ")),
        DnsOutcome::Referral { zone, ns } => {
            format!("위임: {zone} 영역은 {} 담당", ns.join(", "))
        }
        DnsOutcome::NxDomain => "NXDOMAIN (없는 이름)".into(),
        DnsOutcome::NoData => "NODATA (이름은 있으나 그 종류의 레코드는 없음)".into(),
        DnsOutcome::Truncated => "잘림 (TC=1), TCP로 다시 질의".into(),
        DnsOutcome::FormErr => "FORMERR (형식이 잘못된 질의)".into(),
        DnsOutcome::ServFail => "SERVFAIL (서버 실패)".into(),
        DnsOutcome::Refused => "REFUSED (거부)".into(),
        DnsOutcome::BadVersion => "BADVERS (지원하지 않는 EDNS 버전)".into(),
        DnsOutcome::Timeout => "시간 초과".into(),
        DnsOutcome::Failed { error } => format!("실패: {error}"),
    }
}

fn opt(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

fn initiator(i: &str) -> &str {
    match i {
        "navigation" => "주소 입력",
        "redirect" => "리다이렉트",
        other => other,
    }
}

fn ko(event: &Event) -> String {
    match event {
        Event::Navigate { url, initiator: i } => {
            format!("요청 {url} (시작한 쪽: {})", initiator(i))
        }
        Event::UrlParsed {
            scheme,
            host,
            port,
            default_port,
            path,
            query,
            fragment,
        } => {
            let dflt = if *default_port {
                " (스킴의 기본 포트)"
            } else {
                ""
            };
            let fragment = match fragment {
                Some(fr) => format!("{fr} (브라우저에만 남고 보내지 않음)"),
                None => "-".into(),
            };
            format!(
                "URL 분해: 스킴={scheme} 호스트={host} 포트={port}{dflt} 경로={path} 쿼리={} 프래그먼트={fragment}",
                opt(query)
            )
        }
        Event::RequestPrepared {
            method,
            target,
            version,
            headers,
            header_block,
        } => {
            let mut out = if version == "HTTP/2" {
                "요청 HEADERS 프레임 (HTTP/2):".to_string()
            } else {
                format!("요청: {method} {target} {version}")
            };
            let mut sep = if version == "HTTP/2" { " " } else { " | " };
            for (k, v) in headers {
                let _ = write!(out, "{sep}{k}: {v}");
                sep = " | ";
            }
            if let Some(n) = header_block {
                let text: usize = headers.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
                let _ = write!(
                    out,
                    " (HPACK: 텍스트로 {text}바이트인 필드를 {n}바이트로 전송)"
                );
            }
            out
        }
        Event::Lookup {
            name,
            addrs,
            answered_by,
            error,
        } => match (error, answered_by) {
            (Some(e), _) => format!("{name} 조회 실패: {e}"),
            (None, Some(CacheLevel::Resolver)) => {
                format!("{name} 조회 -> {} (재귀 리졸버가 답함)", addrs.join(", "))
            }
            (None, Some(l)) => {
                format!(
                    "{name} 조회 -> {} ({}에서 찾음)",
                    addrs.join(", "),
                    level(*l)
                )
            }
            (None, None) => format!("{name} 조회 -> {}", addrs.join(", ")),
        },
        Event::CacheLookup {
            level: l,
            name,
            hit,
            answer,
        } => match hit {
            true => format!("{}: 있음 {name} -> {}", level(*l), answer.join(", ")),
            false => format!("{}: 없음 {name}", level(*l)),
        },
        Event::DnsExchange {
            server,
            name,
            qtype,
            id,
            transport,
            outcome: o,
        } => format!(
            "DNS 질의 {name} {qtype} (id {id}, {transport}) -> {server}: {}",
            outcome(o)
        ),
        Event::DnsServe {
            role: r,
            name,
            qtype,
            id,
            transport,
            outcome: o,
        } => format!(
            "{}의 답 {name} {qtype} (id {id}, {transport}): {}",
            role(r),
            outcome(o)
        ),
        Event::TcpConnect {
            local,
            remote,
            rtt_us,
            rttvar_us,
            cwnd,
            ssthresh,
            mss,
            retransmits,
            delivery_rate_bps,
        } => format!(
            "TCP connect() {local} -> {remote} 완료: ESTABLISHED; TCP_INFO rtt={rtt_us}us rttvar={rttvar_us}us cwnd={cwnd} ssthresh={} mss={mss} 재전송={retransmits} 전달 속도={}",
            ssthresh_text(*ssthresh),
            rate_text(*delivery_rate_bps)
        ),
        Event::TcpInfo {
            remote,
            after_response,
            rtt_us,
            rttvar_us,
            cwnd,
            ssthresh,
            total_retrans,
            delivery_rate_bps,
            bytes_sent,
            bytes_received,
        } => format!(
            "{} TCP_INFO ({remote}): rtt={rtt_us}us rttvar={rttvar_us}us cwnd={cwnd} ssthresh={} 재전송={total_retrans} 전달 속도={} 보냄={bytes_sent}B 받음={bytes_received}B",
            if *after_response {
                "응답 직후"
            } else {
                "마지막"
            },
            ssthresh_text(*ssthresh),
            rate_text(*delivery_rate_bps)
        ),
        Event::ConnectionReused { remote, version } => {
            format!("{remote}와(과) 열려 있던 {version} 연결을 재사용")
        }
        Event::TlsHandshake {
            sni,
            version,
            cipher,
            group,
            alpn,
            chain,
            verified_by,
        } => format!(
            "{sni}와(과) TLS {version}: 암호 스위트={cipher} 키 교환={group} ALPN={} 인증서 체인=[{}] 검증한 곳: {verified_by}",
            opt(alpn),
            chain.join(" <- ")
        ),
        Event::RequestSent {
            method,
            url,
            version,
        } => format!("{method} {url} 보냄 ({version})"),
        Event::Waiting { status: 0, .. } => {
            "첫 바이트를 기다림 (HTTP/0.9: 상태 줄도 헤더도 없음)".to_string()
        }
        Event::Waiting { status, .. } => format!("응답 헤더를 기다림: {status}"),
        Event::BodyReceived {
            status: 0,
            wire_bytes,
            ..
        } => format!(
            "응답 전체 {wire_bytes}바이트를 받음, 서버가 연결을 닫아 끝을 알림 (HTTP/0.9: 본문뿐)"
        ),
        Event::BodyReceived {
            status,
            content_type,
            content_encoding,
            wire_bytes,
        } => format!(
            "{status} {} 받음 (전송 {wire_bytes}바이트, 인코딩 {})",
            opt(content_type),
            opt(content_encoding)
        ),
        Event::Decoded {
            encoding,
            wire_bytes,
            decoded_bytes,
        } => {
            let saved = match crate::event::saved_percent(*wire_bytes, *decoded_bytes) {
                Some(p) if p > 0 => format!("전송량 {p}% 절약"),
                _ => format!(
                    "압축 이득 없음: 전송 {}바이트 더 많음",
                    wire_bytes.saturating_sub(*decoded_bytes)
                ),
            };
            format!("{encoding} 압축 해제: {wire_bytes} -> {decoded_bytes}바이트 ({saved})")
        }
        Event::HtmlParsed { subresources } => {
            format!("HTML 파싱: {} 발견", subresources.join(", "))
        }
        Event::HttpServe {
            method,
            path,
            version,
            peer,
            status,
        } => format!("{method} {path} {version} (보낸 곳 {peer}) -> {status}"),
        Event::LbPick {
            algorithm,
            backend,
            reason,
        } => format!("{algorithm} 방식으로 {backend} 선택 ({reason})"),
        Event::WebDecision { path, action } => match action {
            WebAction::Static { file, bytes } => {
                format!("{path}: 정적 파일 {file} ({bytes}바이트), 앱 서버 없이 응답")
            }
            WebAction::Proxy { upstream } => {
                format!("{path}: 동적 요청, 애플리케이션 서버 {upstream}(으)로 프록시")
            }
            WebAction::Reject { status, reason } => format!("{path}: {status} ({reason})"),
        },
        Event::ProxyForward {
            upstream,
            headers,
            status,
            connection,
        } => {
            let mut out = format!("{upstream}(으)로 전달 -> {status}");
            if !connection.is_empty() {
                let _ = write!(out, " (연결: {connection})");
            }
            for (k, v) in headers {
                let _ = write!(out, " | {k}: {v}");
            }
            out
        }
        Event::HttpCache {
            key,
            outcome,
            reason,
        } => format!("캐시 {outcome} {key}: {reason}"),
        Event::Firewall {
            client,
            allowed,
            reason,
        } => {
            let verdict = if *allowed { "허용" } else { "거부" };
            format!("방화벽 {verdict} {client}: {reason}")
        }
        Event::BackendHealth {
            backend,
            up,
            reason,
        } => {
            let state = if *up { "정상" } else { "장애" };
            format!("백엔드 {backend} {state}: {reason}")
        }
        Event::Tunnel {
            upstream,
            protocol,
            client_to_upstream,
            upstream_to_client,
            ended,
        } => format!(
            "{upstream}(으)로 {protocol} 터널: 올라간 {client_to_upstream}바이트, 내려온 {upstream_to_client}바이트, {ended}"
        ),
        Event::Middleware { name, order } => format!("미들웨어 #{order}: {name}"),
        Event::Route {
            pattern,
            controller,
        } => format!("라우트 {pattern} -> {controller}"),
        Event::Service { name } => format!("서비스 {name}"),
        Event::Sql {
            statement,
            params,
            rows,
        } => match params {
            0 => format!("SQL {statement} ({rows}행)"),
            n => format!("SQL {statement} (매개변수 {n}개, {rows}행)"),
        },
        Event::HttpCall {
            method,
            url,
            peer,
            status,
            error,
        } => match status {
            0 => format!("{method} {url} 호출 ({peer}): {error}"),
            s => format!("{method} {url} 호출 ({peer}): {s}"),
        },
        Event::Note { text } => text.clone(),
        Event::Foreign {
            service,
            name,
            attributes,
        } => {
            let mut out = format!("{service}: {name}");
            for (k, v) in attributes {
                let _ = write!(out, " | {k}={v}");
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_common_step_reads_in_korean_and_keeps_its_facts() {
        let e = Event::DnsServe {
            role: "TLD server (test.)".into(),
            name: "myapp.test.".into(),
            qtype: "A".into(),
            id: 7,
            transport: "udp".into(),
            outcome: DnsOutcome::Referral {
                zone: "myapp.test.".into(),
                ns: vec!["ns1.myapp.test.=127.10.2.3".into()],
            },
        };
        let s = said(&e, Lang::Ko);
        assert!(s.starts_with("TLD 서버 (test.)의 답 myapp.test. A"), "{s}");
        assert!(s.contains("위임") && s.contains("127.10.2.3"), "{s}");
        let e = Event::Lookup {
            name: "myapp.test".into(),
            addrs: vec!["127.10.3.1".into()],
            answered_by: Some(CacheLevel::Os),
            error: None,
        };
        assert_eq!(
            said(&e, Lang::Ko),
            "myapp.test 조회 -> 127.10.3.1 (OS 캐시에서 찾음)"
        );
        assert_eq!(said(&e, Lang::En), e.to_string());
    }
}
