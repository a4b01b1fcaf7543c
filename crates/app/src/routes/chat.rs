//! A chat over WebSocket (C42): `GET /ws/chat/{room}` upgrades (101,
//! Sec-WebSocket-Accept by axum/tungstenite), then every text frame a
//! member sends goes to every member of the room.
//!
//! Bounds: 256 rooms, 1000 members a room, 4 KiB a message, 64 messages
//! queued for a slow member (past that it is told how many it missed). The
//! server pings every 20 s; a member that has not answered (pong) for 45 s
//! is dropped as dead. Closing: the server answers a close frame with its
//! own (the close handshake) and closes with 1009 for an oversized message
//! and 1001 when it shuts down.
//!
//! A room lives on one app server: members that the load balancer sent to
//! different app servers are in different rooms of the same name.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Path;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast;
use tokio::time::Instant;
use weblab_trace::{Event, Layer};

use crate::error::AppError;
use crate::rest::Cx;

pub const MAX_ROOMS: usize = 256;
pub const MAX_MEMBERS: usize = 1000;
pub const MAX_MESSAGE: usize = 4096;
const QUEUE: usize = 64;
const PING_EVERY: Duration = Duration::from_secs(20);
const DEAD_AFTER: Duration = Duration::from_secs(45);

/// A room: what a member says goes in, every member hears it.
type Room = broadcast::Sender<Arc<str>>;
/// One member's ear in a room.
type Ear = broadcast::Receiver<Arc<str>>;

/// The rooms with members on this server.
#[derive(Default)]
pub struct Rooms {
    rooms: Mutex<HashMap<String, Room>>,
}

impl Rooms {
    /// A member's receiver for `room` (made if new), or why not.
    fn join(&self, room: &str) -> Result<(Room, Ear), AppError> {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        // Rooms whose last member left are forgotten first.
        rooms.retain(|_, tx| tx.receiver_count() > 0);
        if !rooms.contains_key(room) && rooms.len() >= MAX_ROOMS {
            return Err(AppError::too_many(
                format!("{MAX_ROOMS} rooms are open; try an existing one"),
                10,
            ));
        }
        let tx = rooms
            .entry(room.to_string())
            .or_insert_with(|| broadcast::channel(QUEUE).0)
            .clone();
        if tx.receiver_count() >= MAX_MEMBERS {
            return Err(AppError::too_many(
                format!("room {room} is full ({MAX_MEMBERS} members)"),
                10,
            ));
        }
        let rx = tx.subscribe();
        Ok((tx, rx))
    }

    /// How many members `room` has here.
    pub fn members(&self, room: &str) -> usize {
        let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        rooms.get(room).map_or(0, broadcast::Sender::receiver_count)
    }
}

/// GET /ws/chat/{room}: the upgrade; 400 for a bad room name, 426 (by
/// axum) for a request that is not a WebSocket upgrade.
pub async fn join(
    cx: Cx,
    Path(room): Path<String>,
    ws: WebSocketUpgrade,
) -> Result<Response, AppError> {
    if room.is_empty()
        || room.len() > 32
        || !room
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(AppError::bad_request(
            "a room name is 1 to 32 of a-z, 0-9 and -",
        ));
    }
    let name = match &cx.who {
        Some(p) => p.name.clone(),
        None => format!("guest-{:04x}", rand::random::<u16>()),
    };
    let (tx, rx) = cx.s.rooms.join(&room)?;
    Ok(ws
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| member(cx, socket, room, name, tx, rx))
        .into_response())
}

/// What ended a member's connection.
fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }))
}

/// One member, from the upgrade to the close.
async fn member(cx: Cx, mut socket: WebSocket, room: String, name: String, tx: Room, mut rx: Ear) {
    let span = cx.s.rec.begin(cx.ctx, Layer::Application);
    let (mut sent, mut received) = (0u64, 0u64);
    let _ = tx.send(format!("* {name} joined {room}").into());
    let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
    let mut last_heard = Instant::now();
    let mut shutdown = cx.s.shutdown.subscribe();
    let mut stopping = std::pin::pin!(async move {
        let _ = shutdown.wait_for(|stopping| *stopping).await;
    });
    let ended: String = loop {
        tokio::select! {
            frame = socket.recv() => match frame {
                Some(Ok(Message::Text(t))) => {
                    last_heard = Instant::now();
                    received += 1;
                    let _ = tx.send(format!("{name}: {}", t.as_str()).into());
                }
                Some(Ok(Message::Binary(b))) => {
                    last_heard = Instant::now();
                    received += 1;
                    let _ = tx.send(format!("* {name} sent {} bytes of binary", b.len()).into());
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => last_heard = Instant::now(),
                Some(Ok(Message::Close(frame))) => {
                    // tungstenite queued the answering close frame; send
                    // it, completing the close handshake.
                    let _ = futures::SinkExt::flush(&mut socket).await;
                    break match frame {
                        Some(f) => format!("client closed ({} {})", f.code, f.reason),
                        None => "client closed (no code)".into(),
                    };
                }
                Some(Err(e)) => {
                    let too_big = e.to_string().contains("too long") || e.to_string().contains("too big");
                    if too_big {
                        let _ = socket.send(close(close_code::SIZE, "message over 4096 bytes")).await;
                        break "closed 1009: message over 4096 bytes".into();
                    }
                    break format!("connection error: {e}");
                }
                None => break "connection gone without a close frame".into(),
            },
            msg = rx.recv() => {
                let text: Arc<str> = match msg {
                    Ok(m) => m,
                    Err(broadcast::error::RecvError::Lagged(n)) => format!("* you missed {n} messages (too slow)").into(),
                    Err(broadcast::error::RecvError::Closed) => break "room closed".into(),
                };
                if socket.send(Message::Text(Utf8Bytes::from(&*text))).await.is_err() {
                    break "send failed".into();
                }
                sent += 1;
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > DEAD_AFTER {
                    break format!("dead peer: nothing heard for {} s", DEAD_AFTER.as_secs());
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    break "ping failed".into();
                }
            }
            _ = &mut stopping => {
                let _ = socket.send(close(close_code::AWAY, "server shutting down")).await;
                break "closed 1001: server shutting down".into();
            }
        }
    };
    drop(rx);
    let _ = tx.send(format!("* {name} left {room}").into());
    cx.s.rec.end(
        span,
        Event::Note {
            text: format!(
                "websocket chat room {room} as {name}: {received} messages in, {sent} out; {ended}"
            ),
        },
    );
}

/// Subscriptions one STOMP connection may hold.
const MAX_SUBSCRIPTIONS: usize = 16;

impl Rooms {
    /// The sender of `room`, made if new (for a STOMP SEND).
    fn sender(&self, room: &str) -> Result<Room, AppError> {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = rooms.get(room) {
            return Ok(tx.clone());
        }
        rooms.retain(|_, tx| tx.receiver_count() > 0);
        if rooms.len() >= MAX_ROOMS {
            return Err(AppError::too_many(
                format!("{MAX_ROOMS} rooms are open"),
                10,
            ));
        }
        let tx = broadcast::channel(QUEUE).0;
        rooms.insert(room.to_string(), tx.clone());
        Ok(tx)
    }
}

/// GET /ws/stomp: the same rooms as topics (`/topic/NAME`), spoken as STOMP
/// 1.2 over WebSocket; the client must offer the `v12.stomp` subprotocol
/// (or 1.1/1.0, answered with 1.2 frames).
pub async fn stomp(cx: Cx, ws: WebSocketUpgrade) -> Result<Response, AppError> {
    let offered = cx
        .headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| matches!(p.trim(), "v12.stomp" | "v11.stomp" | "v10.stomp"));
    if !offered {
        return Err(AppError::bad_request(
            "this endpoint speaks STOMP: offer Sec-WebSocket-Protocol: v12.stomp",
        ));
    }
    let name = match &cx.who {
        Some(p) => p.name.clone(),
        None => format!("guest-{:04x}", rand::random::<u16>()),
    };
    Ok(ws
        .protocols(["v12.stomp", "v11.stomp", "v10.stomp"])
        .max_message_size(crate::stomp::MAX_FRAME)
        .max_frame_size(crate::stomp::MAX_FRAME)
        .on_upgrade(move |socket| stomp_session(cx, socket, name))
        .into_response())
}

/// The room a `/topic/NAME` destination names, or why it is not one.
fn topic(dest: Option<&str>) -> Result<String, String> {
    let dest = dest.ok_or("destination header missing")?;
    let name = dest
        .strip_prefix("/topic/")
        .filter(|n| {
            !n.is_empty()
                && n.len() <= 32
                && n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
        .ok_or_else(|| format!("destination {dest:?} is not /topic/NAME (a-z, 0-9, -)"))?;
    // Kept apart from the plain chat's rooms.
    Ok(format!("stomp:{name}"))
}

async fn stomp_session(cx: Cx, mut socket: WebSocket, name: String) {
    use crate::stomp::{Frame, parse};
    let span = cx.s.rec.begin(cx.ctx, Layer::Application);
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<String>(QUEUE);
    let mut subs: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut connected = false;
    let (mut frames_in, mut frames_out) = (0u64, 0u64);
    let mut shutdown = cx.s.shutdown.subscribe();
    let mut stopping = std::pin::pin!(async move {
        let _ = shutdown.wait_for(|stopping| *stopping).await;
    });
    let send = async |socket: &mut WebSocket, f: Frame| {
        socket.send(Message::Text(f.encode().into())).await.is_ok()
    };
    let ended: String = loop {
        tokio::select! {
            msg = socket.recv() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Binary(_))) => {
                        send(&mut socket, Frame::new("ERROR").header("message", "send frames as text messages")).await;
                        break "ERROR: binary message".into();
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) => {
                        let _ = futures::SinkExt::flush(&mut socket).await;
                        break "client closed the WebSocket".into();
                    }
                    Some(Err(e)) => break format!("connection error: {e}"),
                    None => break "connection gone".into(),
                };
                let frame = match parse(text.as_str()) {
                    Ok(Some(f)) => f,
                    Ok(None) => continue, // a heart-beat
                    Err(why) => {
                        send(&mut socket, Frame::new("ERROR").header("message", &why)).await;
                        break format!("ERROR: {why}");
                    }
                };
                frames_in += 1;
                let receipt = frame.get("receipt").map(str::to_string);
                let verdict: Result<bool, String> = match frame.command.as_str() {
                    "CONNECT" | "STOMP" => {
                        let versions = frame.get("accept-version").unwrap_or("1.0");
                        if versions.split(',').any(|v| v.trim() == "1.2") {
                            connected = true;
                            let ok = Frame::new("CONNECTED")
                                .header("version", "1.2")
                                .header("heart-beat", "0,0")
                                .header("server", "weblab")
                                .header("user-name", &name);
                            frames_out += 1;
                            Ok(send(&mut socket, ok).await)
                        } else {
                            Err(format!("only STOMP 1.2 is spoken; accept-version was {versions:?}"))
                        }
                    }
                    _ if !connected => Err("send CONNECT first".into()),
                    "SUBSCRIBE" => match (frame.get("id"), topic(frame.get("destination"))) {
                        (None, _) => Err("SUBSCRIBE needs an id header".into()),
                        (_, Err(why)) => Err(why),
                        (Some(_), Ok(_)) if subs.len() >= MAX_SUBSCRIPTIONS => {
                            Err(format!("at most {MAX_SUBSCRIPTIONS} subscriptions"))
                        }
                        (Some(id), Ok(room)) => match cx.s.rooms.join(&room) {
                            Ok((_, mut rx)) => {
                                let (id, dest, out) = (id.to_string(), frame.get("destination").unwrap_or("").to_string(), out_tx.clone());
                                let sub = id.clone();
                                let task = tokio::spawn(async move {
                                    let mut n = 0u64;
                                    loop {
                                        let body = match rx.recv().await {
                                            Ok(b) => b,
                                            Err(broadcast::error::RecvError::Lagged(_)) => continue,
                                            Err(broadcast::error::RecvError::Closed) => break,
                                        };
                                        n += 1;
                                        let m = Frame::new("MESSAGE")
                                            .header("subscription", &sub)
                                            .header("message-id", &format!("{sub}-{n}"))
                                            .header("destination", &dest)
                                            .header("content-type", "text/plain")
                                            .body(&body);
                                        if out.send(m.encode()).await.is_err() {
                                            break;
                                        }
                                    }
                                });
                                if let Some(old) = subs.insert(id, task) {
                                    old.abort();
                                }
                                Ok(true)
                            }
                            Err(e) => Err(e.message().to_string()),
                        },
                    },
                    "UNSUBSCRIBE" => match frame.get("id").and_then(|id| subs.remove(id)) {
                        Some(task) => {
                            task.abort();
                            Ok(true)
                        }
                        None => Err("UNSUBSCRIBE names no subscription of this connection".into()),
                    },
                    "SEND" => match topic(frame.get("destination")) {
                        Ok(room) => match cx.s.rooms.sender(&room) {
                            Ok(tx) => {
                                let _ = tx.send(frame.body.clone().into());
                                Ok(true)
                            }
                            Err(e) => Err(e.message().to_string()),
                        },
                        Err(why) => Err(why),
                    },
                    "DISCONNECT" => Ok(false),
                    other => Err(format!("{other} is not a command this server takes")),
                };
                match verdict {
                    Ok(go_on) => {
                        if let Some(r) = receipt {
                            frames_out += 1;
                            send(&mut socket, Frame::new("RECEIPT").header("receipt-id", &r)).await;
                        }
                        if !go_on {
                            let _ = socket.send(close(close_code::NORMAL, "DISCONNECT")).await;
                            break "client sent DISCONNECT".into();
                        }
                    }
                    Err(why) => {
                        // STOMP: an ERROR frame, then the connection ends.
                        send(&mut socket, Frame::new("ERROR").header("message", &why)).await;
                        break format!("ERROR: {why}");
                    }
                }
            }
            Some(out) = out_rx.recv() => {
                frames_out += 1;
                if socket.send(Message::Text(out.into())).await.is_err() {
                    break "send failed".into();
                }
            }
            _ = &mut stopping => {
                let _ = socket.send(close(close_code::AWAY, "server shutting down")).await;
                break "closed 1001: server shutting down".into();
            }
        }
    };
    for (_, t) in subs {
        t.abort();
    }
    cx.s.rec.end(
        span,
        Event::Note {
            text: format!(
                "STOMP over WebSocket as {name}: {frames_in} frames in, {frames_out} out; {ended}"
            ),
        },
    );
}
