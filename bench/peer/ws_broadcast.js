// The peer of bench/ws.sh: a WebSocket chat room on Node's `ws` library,
// the usual Node baseline. Every text message a client sends goes to
// every open client, as weblab's /ws/chat/{room} does.
// usage: node ws_broadcast.js NODE_DEPS HOST PORT
const [depsDir, host, port] = process.argv.slice(2);
const { WebSocketServer, WebSocket } = require(`${depsDir}/node_modules/ws`);
const wss = new WebSocketServer({ host, port: Number(port), maxPayload: 4096 });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    for (const c of wss.clients) {
      if (c.readyState === WebSocket.OPEN) c.send(data, { binary: isBinary });
    }
  });
});
wss.on('listening', () => console.log(`ws peer on ${host}:${port}`));
