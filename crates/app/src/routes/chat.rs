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
