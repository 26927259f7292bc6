import net from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A loopback TCP proxy in front of a real server (Postgres, here) that a test
 * can cut the way a network partition does: sockets stay open but nothing
 * gets through in either direction, and nobody is told.
 */
export class TcpProxy {
  private readonly server: net.Server;
  private readonly pairs = new Set<[net.Socket, net.Socket]>();
  private cutOff = false;
  port = 0;

  constructor(target: { host: string; port: number }) {
    this.server = net.createServer((client) => {
      const upstream = net.connect(target.port, target.host);
      const pair: [net.Socket, net.Socket] = [client, upstream];
      this.pairs.add(pair);
      const forward = (from: net.Socket, to: net.Socket) => from.on('data', (chunk) => { if (!this.cutOff) to.write(chunk); });
      forward(client, upstream);
      forward(upstream, client);
      const end = () => { client.destroy(); upstream.destroy(); this.pairs.delete(pair); };
      client.on('close', end).on('error', end);
      upstream.on('close', end).on('error', end);
    });
  }

  async start(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this.port;
  }

  /** Silently drop everything from now on (a partition). */
  cut(): void {
    this.cutOff = true;
  }

  /** Abort every open connection with a TCP RST, the way a crashed peer or a middlebox does: the client reads ECONNRESET. */
  reset(): void {
    for (const [client, upstream] of this.pairs) { client.resetAndDestroy(); upstream.destroy(); }
    this.pairs.clear();
  }

  /** Let traffic through again. */
  heal(): void {
    this.cutOff = false;
  }

  async stop(): Promise<void> {
    for (const [a, b] of this.pairs) { a.destroy(); b.destroy(); }
    this.pairs.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
