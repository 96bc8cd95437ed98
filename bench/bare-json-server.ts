// The resolver bench's baseline: a bare Node http server answering every request with a fixed JSON body.
//   node bench/bare-json-server.ts PORT BODY_BYTES   (prints "listening" when ready)
import http from 'node:http';

const [port, bytes] = process.argv.slice(2).map(Number) as [number, number];
const filler = 'x'.repeat(Math.max(0, bytes - '{"filler":""}'.length));
const body = Buffer.from(JSON.stringify({ filler }));
http
  .createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': body.length });
      res.end(body);
    });
  })
  .listen(port, '127.0.0.1', () => console.log('listening'));
