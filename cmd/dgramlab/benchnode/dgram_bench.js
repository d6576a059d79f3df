'use strict';
// The Node side of `dgramlab bench`: node dgram_bench.js MODE [--key=value...]
//
// It measures Node's own dgram module on 127.0.0.1 the same way the Go side
// measures its paths. Every mode writes one JSON object per line on stdout;
// times are process.hrtime.bigint() values (CLOCK_MONOTONIC, the same clock
// in every process of the machine), as decimal strings.
//
//   recv  bind 127.0.0.1:0 with a receive buffer of --rcvbuf bytes (0: the
//         default), print {"port", "rcvbuf"} (rcvbuf as getsockopt reports
//         it); count datagrams whose first byte is 'M'. When a line
//         "SENT END_NS" arrives on stdin (the sender's count and the time
//         it stopped), wait until SENT datagrams were counted or none has
//         been for --idle-ms, then print {"received", "lastNs", "cpuUs"}
//         and exit; cpuUs is the CPU time (user + system) used since the
//         port was printed.
//   send  send --size-byte datagrams ('M' first) to 127.0.0.1:--port for
//         --duration-ns in batches of --batch sends, the last one's
//         callback starting the next batch: as fast as the event loop
//         allows, or with --rate=N (datagrams per second) paced: a batch
//         holds what is due (at most --batch, and after a late wake-up at
//         most --window-ns worth, the rest forgiven), and when nothing is
//         due a timer starts the next batch. Print {"sent", "errors",
//         "startNs", "endNs", "cpuUs"} and exit; cpuUs is the CPU time
//         used while sending. "sent" counts every send() call; Node
//         reports the errors of sends without a callback to nobody, so
//         they show up as loss.
//   echo  bind 127.0.0.1:0, print {"port"}, send every datagram back to
//         its sender until stdin closes.
//   ping  send a --size-byte datagram carrying a sequence number to
//         127.0.0.1:--port, wait for it to come back, repeat for
//         --duration-ns from the first pong (which is not counted). A ping
//         with no pong after --timeout-ms is a timeout; the next ping is
//         sent. Print {"samples": [round trip ns...], "timeouts"} and exit.

const dgram = require('node:dgram');

const mode = process.argv[2];
const opt = {};
for (const arg of process.argv.slice(3)) {
  const m = /^--([a-z-]+)=(.*)$/.exec(arg);
  if (!m) fail(`bad argument ${arg}`);
  opt[m[1]] = m[2];
}
const now = () => process.hrtime.bigint();
const host = '127.0.0.1';
const MEASURE = 0x4d; // 'M'

function fail(msg) {
  process.stderr.write(`dgram_bench.js: ${msg}\n`);
  process.exit(2);
}

function print(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function num(name) {
  const v = Number(opt[name]);
  if (!Number.isFinite(v)) fail(`--${name} is required`);
  return v;
}

// onStdinLine calls fn with each line of stdin, and end when it closes.
function onStdinLine(fn, end) {
  let buf = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk) => {
    buf += chunk;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      fn(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  process.stdin.on('end', end || (() => {}));
}

// cpuUs returns the CPU time used since `from` (a process.cpuUsage()).
function cpuUs(from) {
  const u = process.cpuUsage(from);
  return u.user + u.system;
}

function recv() {
  const idleNs = BigInt(Math.round(num('idle-ms') * 1e6));
  const rcvbuf = num('rcvbuf');
  const sock = dgram.createSocket(rcvbuf > 0 ? { type: 'udp4', recvBufferSize: rcvbuf } : 'udp4');
  let cpu0;
  let count = 0;
  let last = 0n;
  sock.on('message', (msg) => {
    if (msg.length > 0 && msg[0] === MEASURE) {
      count++;
      last = now();
    }
  });
  sock.on('error', (err) => fail(`recv: ${err.message}`));
  sock.bind(0, host, () => {
    cpu0 = process.cpuUsage();
    print({ port: sock.address().port, rcvbuf: sock.getRecvBufferSize() });
  });
  onStdinLine((line) => {
    const [sentStr, endStr] = line.trim().split(/\s+/);
    const sent = Number(sentStr);
    const end = BigInt(endStr);
    const timer = setInterval(() => {
      const from = last > end ? last : end;
      if (count >= sent || now() - from >= idleNs) {
        clearInterval(timer);
        print({ received: count, lastNs: String(last), cpuUs: cpuUs(cpu0) });
        sock.close();
        process.stdin.destroy();
      }
    }, 2);
  });
}

function send() {
  const port = num('port');
  const size = num('size');
  const batch = num('batch');
  const durNs = BigInt(Math.round(num('duration-ns')));
  const rate = num('rate');
  const windowNs = num('window-ns');
  const msg = Buffer.alloc(size);
  msg[0] = MEASURE;
  const sock = dgram.createSocket('udp4');
  let sent = 0;
  let errors = 0;
  let start = 0n;
  let cpu0;
  // The pacer (with --rate): paced counts the datagrams handed out or
  // forgiven; at most `burst` go at once.
  let paced = 0;
  const burst = Math.max(1, Math.ceil(rate * windowNs / 1e9));
  sock.on('error', () => { errors++; });
  const done = (err) => {
    if (err) errors++;
    sendBatch();
  };
  function sendBatch() {
    const elapsed = now() - start;
    if (elapsed >= durNs) {
      const end = now();
      print({ sent, errors, startNs: String(start), endNs: String(end), cpuUs: cpuUs(cpu0) });
      sock.close();
      return;
    }
    let n = batch;
    if (rate > 0) {
      const due = Math.floor(rate * Number(elapsed) / 1e9);
      if (due - paced > burst) paced = due - burst; // late: forgive
      n = Math.min(due - paced, batch);
      if (n <= 0) {
        const waitMs = ((paced + 1) / rate * 1e9 - Number(elapsed)) / 1e6;
        setTimeout(sendBatch, Math.max(0, waitMs));
        return;
      }
      paced += n;
    }
    for (let i = 0; i < n - 1; i++) {
      sock.send(msg, port, host);
    }
    sock.send(msg, port, host, done);
    sent += n;
  }
  sock.bind(0, host, () => {
    cpu0 = process.cpuUsage();
    start = now();
    sendBatch();
  });
}

function echo() {
  const sock = dgram.createSocket('udp4');
  sock.on('message', (msg, rinfo) => sock.send(msg, rinfo.port, rinfo.address));
  sock.on('error', (err) => fail(`echo: ${err.message}`));
  sock.bind(0, host, () => print({ port: sock.address().port }));
  onStdinLine(() => {}, () => sock.close());
}

function ping() {
  const port = num('port');
  const size = num('size');
  const durNs = BigInt(Math.round(num('duration-ns')));
  const timeoutNs = BigInt(Math.round(num('timeout-ms') * 1e6));
  const setupNs = BigInt(Math.round(num('setup-ms') * 1e6));
  const msg = Buffer.alloc(Math.max(size, 8));
  const sock = dgram.createSocket('udp4');
  const samples = [];
  let seq = 0n;
  let sentAt = 0n;
  let start = 0n; // the first pong: not counted
  let progress = 0;
  let timeouts = 0;
  let over = false;
  const setup = now();
  const sendPing = () => {
    seq++;
    msg.writeBigUInt64BE(seq, 0);
    sentAt = now();
    sock.send(msg, 0, size, port, host);
  };
  const finish = () => {
    over = true;
    clearInterval(dog);
    print({ samples, timeouts, primed: start !== 0n });
    sock.close();
  };
  const next = () => {
    const t = now();
    if ((start !== 0n && t - start >= durNs) || (start === 0n && t - setup > setupNs)) {
      finish();
      return;
    }
    sendPing();
  };
  sock.on('message', (m) => {
    if (over || m.length < 8 || m.readBigUInt64BE(0) !== seq) return;
    const rtt = now() - sentAt;
    progress++;
    if (start === 0n) {
      start = now();
    } else {
      samples.push(Number(rtt));
    }
    next();
  });
  sock.on('error', (err) => fail(`ping: ${err.message}`));
  // The watchdog: a ping with no pong after timeout-ms is a timeout.
  let seen = 0;
  let since = now();
  const dog = setInterval(() => {
    if (progress !== seen) {
      seen = progress;
      since = now();
      return;
    }
    if (now() - since >= timeoutNs) {
      timeouts++;
      since = now();
      next();
    }
  }, Math.max(1, Math.round(Number(timeoutNs) / 5e6)));
  sock.bind(0, host, sendPing);
}

switch (mode) {
  case 'recv': recv(); break;
  case 'send': send(); break;
  case 'echo': echo(); break;
  case 'ping': ping(); break;
  default: fail(`unknown mode ${mode}: want recv, send, echo or ping`);
}
