//! WebSockets (C42): a chat, `GET /ws/chat/{room}`, where every text frame
//! a member sends goes to every member of the room; and the same rooms as
//! STOMP 1.2 topics, `GET /ws/stomp` (subprotocol `v12.stomp`). axum and
//! tungstenite do the upgrade (101, Sec-WebSocket-Accept) and the frames.
//!
//! Bounds: 4096 WebSockets a server (503 past that), 256 rooms, 1000
//! members a room, 4 KiB a message, 64 messages queued for a slow member
//! (past that it is told how many it missed), 16 subscriptions a STOMP
//! connection. The server pings every 20 s; a peer not heard from for 45 s
//! is dropped as dead. Closing: the server answers a close frame with its
//! own (the close handshake), closes with 1009 for an oversized message and
//! 1001 when it shuts down.
//!
//! A room lives on one app server: members that the load balancer sent to
//! different app servers are in different rooms of the same name.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Path;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, broadcast, mpsc};
use tokio::time::{Instant, Interval};
use weblab_trace::{Event, Layer};

use crate::error::AppError;
use crate::rest::Cx;
use crate::stomp::{self, Frame};

pub const MAX_SOCKETS: usize = 4096;
pub const MAX_ROOMS: usize = 256;
pub const MAX_MEMBERS: usize = 1000;
pub const MAX_MESSAGE: usize = 4096;
const QUEUE: usize = 64;
const PING_EVERY: Duration = Duration::from_secs(20);
const DEAD_AFTER: Duration = Duration::from_secs(45);
/// Subscriptions one STOMP connection may hold.
const MAX_SUBSCRIPTIONS: usize = 16;

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
}

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

/// A room or topic name: 1 to 32 of a-z, 0-9 and -.
fn room_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// What others see of this member: the signed-in name, else a guest tag.
fn display_name(cx: &Cx) -> String {
    match &cx.who {
        Some(p) => p.name.clone(),
        None => format!("guest-{:04x}", rand::random::<u16>()),
    }
}

/// One of the server's WebSocket places, held for the socket's life; 503
/// when they are all taken (an upgraded connection is no longer counted by
/// the HTTP server's connection limit).
fn socket_place(cx: &Cx) -> Result<OwnedSemaphorePermit, AppError> {
    cx.s.sockets.clone().try_acquire_owned().map_err(|_| {
        AppError::unavailable(
            format!("{MAX_SOCKETS} WebSockets are open on this server"),
            10,
        )
    })
}

/// A WebSocket's buffers sized for many small messages: tungstenite's
/// default 128 KiB read buffer per socket made an idle chat member cost
/// ~140 KiB (bench/ws.sh); messages here are at most `max` bytes. Every
/// send is flushed at once, and a socket whose writes fail holds at most
/// a few messages.
fn sized(ws: WebSocketUpgrade, max: usize) -> WebSocketUpgrade {
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(4 * max)
}

/// A close frame.
fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }))
}

/// Whether tungstenite refused a message for its size (it is closed
/// with 1009 then).
fn too_big(e: axum::Error) -> Result<(), String> {
    use tokio_tungstenite::tungstenite::Error as WsError;
    match e.into_inner().downcast::<WsError>() {
        Ok(e) if matches!(*e, WsError::Capacity(_)) => Ok(()),
        Ok(e) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// The heartbeat: a ping every [`PING_EVERY`]; a peer not heard from
/// (any frame, pongs included) for [`DEAD_AFTER`] is dead.
struct Liveness {
    ping: Interval,
    last_heard: Instant,
}

impl Liveness {
    fn new() -> Liveness {
        Liveness {
            ping: tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY),
            last_heard: Instant::now(),
        }
    }

    fn heard(&mut self) {
        self.last_heard = Instant::now();
    }

    /// Waits for the next ping time; `Err` when the peer is dead.
    async fn due(&mut self) -> Result<(), String> {
        self.ping.tick().await;
        if self.last_heard.elapsed() > DEAD_AFTER {
            return Err(format!(
                "dead peer: nothing heard for {} s",
                DEAD_AFTER.as_secs()
            ));
        }
        Ok(())
    }
}

/// Resolves when the server starts stopping.
async fn stopping(cx: &Cx) {
    let mut shutdown = cx.s.shutdown.subscribe();
    let _ = shutdown.wait_for(|stopping| *stopping).await;
}

/// GET /ws/chat/{room}: the upgrade; 400 for a bad room name, 426 (by
/// axum) for a request that is not a WebSocket upgrade.
pub async fn join(
    cx: Cx,
    Path(room): Path<String>,
    ws: WebSocketUpgrade,
) -> Result<Response, AppError> {
    if !room_name_ok(&room) {
        return Err(AppError::bad_request(
            "a room name is 1 to 32 of a-z, 0-9 and -",
        ));
    }
    let place = socket_place(&cx)?;
    let name = display_name(&cx);
    let (tx, rx) = cx.s.rooms.join(&room)?;
    Ok(sized(ws, MAX_MESSAGE)
        .on_upgrade(move |socket| member(cx, socket, room, name, (tx, rx), place))
        .into_response())
}

/// One member, from the upgrade to the close.
async fn member(
    cx: Cx,
    mut socket: WebSocket,
    room: String,
    name: String,
    (tx, mut rx): (Room, Ear),
    _place: OwnedSemaphorePermit,
) {
    let span = cx.s.rec.begin(cx.ctx, Layer::Application);
    let (mut sent, mut received) = (0u64, 0u64);
    let _ = tx.send(format!("* {name} joined {room}").into());
    let mut alive = Liveness::new();
    let mut stop = std::pin::pin!(stopping(&cx));
    let ended: String = loop {
        tokio::select! {
            frame = socket.recv() => {
                if let Some(Ok(_)) = &frame {
                    alive.heard();
                }
                match frame {
                    Some(Ok(Message::Text(t))) => {
                        received += 1;
                        let _ = tx.send(format!("{name}: {}", t.as_str()).into());
                    }
                    Some(Ok(Message::Binary(b))) => {
                        received += 1;
                        let _ = tx.send(format!("* {name} sent {} bytes of binary", b.len()).into());
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(frame))) => {
                        // tungstenite queued the answering close frame; send
                        // it, completing the close handshake.
                        let _ = futures::SinkExt::flush(&mut socket).await;
                        break match frame {
                            Some(f) => format!("client closed ({} {})", f.code, f.reason),
                            None => "client closed (no code)".into(),
                        };
                    }
                    Some(Err(e)) => match too_big(e) {
                        Ok(()) => {
                            let _ = socket.send(close(close_code::SIZE, "message over 4096 bytes")).await;
                            break "closed 1009: message over 4096 bytes".into();
                        }
                        Err(e) => break format!("connection error: {e}"),
                    },
                    None => break "connection gone without a close frame".into(),
                }
            }
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
            due = alive.due() => {
                if let Err(dead) = due {
                    break dead;
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    break "ping failed".into();
                }
            }
            _ = &mut stop => {
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
    let place = socket_place(&cx)?;
    let name = display_name(&cx);
    Ok(sized(ws, stomp::MAX_FRAME)
        .protocols(["v12.stomp", "v11.stomp", "v10.stomp"])
        .on_upgrade(move |socket| stomp_session(cx, socket, name, place))
        .into_response())
}

/// The room a `/topic/NAME` destination names, or why it is not one.
fn topic(dest: Option<&str>) -> Result<String, String> {
    let dest = dest.ok_or("destination header missing")?;
    let name = dest
        .strip_prefix("/topic/")
        .filter(|n| room_name_ok(n))
        .ok_or_else(|| format!("destination {dest:?} is not /topic/NAME (a-z, 0-9, -)"))?;
    // Kept apart from the plain chat's rooms.
    Ok(format!("stomp:{name}"))
}

/// One STOMP connection's state.
struct Stomp<'a> {
    cx: &'a Cx,
    name: &'a str,
    connected: bool,
    subs: HashMap<String, tokio::task::JoinHandle<()>>,
    /// MESSAGE frames from the subscriptions, to be written out.
    out: mpsc::Sender<String>,
}

impl Stomp<'_> {
    /// Acts on one client frame: the frame to answer with (CONNECTED), and
    /// false for DISCONNECT; or why the frame is refused (an ERROR frame
    /// and the end of the connection, as STOMP requires).
    fn handle(&mut self, frame: &Frame) -> Result<(Option<Frame>, bool), String> {
        match frame.command.as_str() {
            "CONNECT" | "STOMP" => {
                let versions = frame.get("accept-version").unwrap_or("1.0");
                if !versions.split(',').any(|v| v.trim() == "1.2") {
                    return Err(format!(
                        "only STOMP 1.2 is spoken; accept-version was {versions:?}"
                    ));
                }
                self.connected = true;
                let ok = Frame::new("CONNECTED")
                    .header("version", "1.2")
                    .header("heart-beat", "0,0")
                    .header("server", "weblab")
                    .header("user-name", self.name);
                Ok((Some(ok), true))
            }
            _ if !self.connected => Err("send CONNECT first".into()),
            "SUBSCRIBE" => {
                let id = frame.get("id").ok_or("SUBSCRIBE needs an id header")?;
                let room = topic(frame.get("destination"))?;
                if self.subs.len() >= MAX_SUBSCRIPTIONS && !self.subs.contains_key(id) {
                    return Err(format!("at most {MAX_SUBSCRIPTIONS} subscriptions"));
                }
                let (_, rx) = self
                    .cx
                    .s
                    .rooms
                    .join(&room)
                    .map_err(|e| e.message().to_string())?;
                let dest = frame.get("destination").unwrap_or("").to_string();
                let task = tokio::spawn(forward(rx, id.to_string(), dest, self.out.clone()));
                if let Some(old) = self.subs.insert(id.to_string(), task) {
                    old.abort();
                }
                Ok((None, true))
            }
            "UNSUBSCRIBE" => {
                let task = frame
                    .get("id")
                    .and_then(|id| self.subs.remove(id))
                    .ok_or("UNSUBSCRIBE names no subscription of this connection")?;
                task.abort();
                Ok((None, true))
            }
            "SEND" => {
                let room = topic(frame.get("destination"))?;
                let tx = self
                    .cx
                    .s
                    .rooms
                    .sender(&room)
                    .map_err(|e| e.message().to_string())?;
                let _ = tx.send(frame.body.clone().into());
                Ok((None, true))
            }
            "DISCONNECT" => Ok((None, false)),
            other => Err(format!("{other} is not a command this server takes")),
        }
    }
}

impl Drop for Stomp<'_> {
    fn drop(&mut self) {
        for t in self.subs.values() {
            t.abort();
        }
    }
}

/// One subscription: the room's messages as MESSAGE frames, numbered.
async fn forward(mut rx: Ear, sub: String, dest: String, out: mpsc::Sender<String>) {
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
}

async fn stomp_session(cx: Cx, mut socket: WebSocket, name: String, _place: OwnedSemaphorePermit) {
    let span = cx.s.rec.begin(cx.ctx, Layer::Application);
    let (out, mut out_rx) = mpsc::channel::<String>(QUEUE);
    let mut conn = Stomp {
        cx: &cx,
        name: &name,
        connected: false,
        subs: HashMap::new(),
        out,
    };
    let (mut frames_in, mut frames_out) = (0u64, 0u64);
    let mut alive = Liveness::new();
    let mut stop = std::pin::pin!(stopping(&cx));
    let ended: String = loop {
        // What to write next, and whether the connection then ends (why,
        // and the close frame to send last, if any).
        type End = Option<(String, Option<Message>)>;
        let (reply, end): (Option<Frame>, End) = tokio::select! {
            msg = socket.recv() => {
                if let Some(Ok(_)) = &msg {
                    alive.heard();
                }
                match msg {
                    Some(Ok(Message::Text(t))) => match stomp::parse(t.as_str()) {
                        Ok(None) => (None, None), // a heart-beat
                        Ok(Some(frame)) => {
                            frames_in += 1;
                            match conn.handle(&frame) {
                                Ok((reply, go_on)) => {
                                    let receipt = frame
                                        .get("receipt")
                                        .map(|r| Frame::new("RECEIPT").header("receipt-id", r));
                                    if let Some(r) = reply {
                                        frames_out += 1;
                                        let _ = socket.send(Message::Text(r.encode().into())).await;
                                    }
                                    let end = (!go_on).then(|| {
                                        let bye = close(close_code::NORMAL, "DISCONNECT");
                                        ("client sent DISCONNECT".to_string(), Some(bye))
                                    });
                                    (receipt, end)
                                }
                                Err(why) => (
                                    Some(Frame::new("ERROR").header("message", &why)),
                                    Some((format!("ERROR: {why}"), None)),
                                ),
                            }
                        }
                        Err(why) => (
                            Some(Frame::new("ERROR").header("message", &why)),
                            Some((format!("ERROR: {why}"), None)),
                        ),
                    },
                    Some(Ok(Message::Binary(_))) => (
                        Some(Frame::new("ERROR").header("message", "send frames as text messages")),
                        Some(("ERROR: binary message".into(), None)),
                    ),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => (None, None),
                    Some(Ok(Message::Close(_))) => {
                        let _ = futures::SinkExt::flush(&mut socket).await;
                        break "client closed the WebSocket".into();
                    }
                    Some(Err(e)) => break format!("connection error: {e}"),
                    None => break "connection gone".into(),
                }
            }
            Some(m) = out_rx.recv() => {
                frames_out += 1;
                if socket.send(Message::Text(m.into())).await.is_err() {
                    break "send failed".into();
                }
                (None, None)
            }
            due = alive.due() => {
                if let Err(dead) = due {
                    break dead;
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    break "ping failed".into();
                }
                (None, None)
            }
            _ = &mut stop => {
                let _ = socket.send(close(close_code::AWAY, "server shutting down")).await;
                break "closed 1001: server shutting down".into();
            }
        };
        if let Some(f) = reply {
            frames_out += 1;
            let _ = socket.send(Message::Text(f.encode().into())).await;
        }
        if let Some((why, last)) = end {
            if let Some(m) = last {
                let _ = socket.send(m).await;
            }
            break why;
        }
    };
    drop(conn);
    cx.s.rec.end(
        span,
        Event::Note {
            text: format!(
                "STOMP over WebSocket as {name}: {frames_in} frames in, {frames_out} out; {ended}"
            ),
        },
    );
}
