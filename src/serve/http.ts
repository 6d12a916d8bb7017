// The HTTP plumbing of `longctx serve`: JSON and server-sent-event responses, bounded request
// bodies, the API key check. Nothing here knows the model.

import * as http from 'node:http';
import { createHash, timingSafeEqual } from 'node:crypto';
import { ApiError } from './request.js';
import { jsonErrorText } from '../util/json-error.js';

export const JSON_HEADERS = { 'Content-Type': 'application/json' };

/** "Bearer KEY" against the key in constant time (hashes first, so lengths do not leak either). */
export function keyMatches(header: string | undefined, key: string): boolean {
  const digest = (x: string): Buffer => createHash('sha256').update(x).digest();
  // the scheme name is case-insensitive (RFC 9110 §11.1): "bearer KEY" is the same credential
  const given = (header ?? '').replace(/^bearer(?= )/i, 'Bearer');
  return timingSafeEqual(digest(given), digest(`Bearer ${key}`));
}

/** The client closed the connection before its request was read: nothing to answer, nothing to log but the access line. */
export class ClientGoneError extends Error {
  override name = 'ClientGoneError';
}

/** A JSON response (nothing when the response is already under way or gone). */
export function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}, closing = false): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { ...JSON_HEADERS, 'Content-Length': String(Buffer.byteLength(text)), ...(closing ? { Connection: 'close' } : {}), ...headers });
  res.end(text);
}

/** A server-sent-events stream on res: send() waits for a slow reader instead of buffering; done() ends it with [DONE]. */
/**
 * Starts a server-sent-events answer. With `usageChunk` (stream_options.include_usage) every chunk
 * but the usage chunk carries `"usage": null`, as OpenAI's stream does.
 */
export function startSse(res: http.ServerResponse, closing: boolean, usageChunk = false): { send(obj: Record<string, unknown>): Promise<void>; done(): void } {
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: closing ? 'close' : 'keep-alive' });
  res.flushHeaders();
  return {
    send: async (obj) => {
      if (res.destroyed) return;
      if (!res.write(`data: ${JSON.stringify(usageChunk && !('usage' in obj) ? { ...obj, usage: null } : obj)}\n\n`)) {
        // a slow reader: wait for the socket rather than buffering the whole answer
        await new Promise<void>((resolve) => {
          res.once('drain', resolve);
          res.once('close', resolve);
        });
      }
    },
    done: () => {
      if (!res.destroyed) res.end('data: [DONE]\n\n');
    },
  };
}

/** The request body as text, at most maxBody bytes (413) arriving within timeoutMs (408). */
export function readBody(req: http.IncomingMessage, maxBody: number, bodyTimeout: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    // a client that trickles its body is cut off: it holds no model slot (the body is read before
    // admission) but it holds memory and a socket
    const timer = setTimeout(() => {
      if (failed) return;
      failed = true;
      reject(new ApiError(408, `the request body did not arrive within ${bodyTimeout / 1000} s`, null, { Connection: 'close' }));
    }, bodyTimeout);
    req.once('close', () => clearTimeout(timer));
    req.on('data', (c: Buffer) => {
      if (failed) return;
      size += c.length;
      if (size > maxBody) {
        failed = true;
        reject(new ApiError(413, `the request body is larger than ${maxBody} bytes`, null, { Connection: 'close' }));
        return;
      }
      chunks.push(c);
    });
    let ended = false;
    req.on('end', () => {
      ended = true;
      clearTimeout(timer);
      if (!failed) resolve(Buffer.concat(chunks).toString('utf8'));
    });
    const fail = (e: Error): void => {
      if (failed || ended) return;
      failed = true;
      reject(e);
    };
    // a client that hangs up mid-upload is not a server error: the access log line says so, no stack
    req.on('error', (e) => fail(new ClientGoneError(`the client went away before sending the whole body (${e.message})`)));
    req.on('close', () => fail(new ClientGoneError('the client went away before sending the whole body')));
  });
}

/** The request body parsed as JSON; invalid JSON is the client's 400. */
export async function readJson(req: http.IncomingMessage, maxBody: number, bodyTimeout: number): Promise<unknown> {
  const text = await readBody(req, maxBody, bodyTimeout);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ApiError(400, `the request body is not valid JSON (${jsonErrorText(e)}); send a JSON object with Content-Type: application/json`);
  }
}
