package tail

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// A minimal RFC 6455 server: the handshake, and a frame codec that accepts
// masked and unmasked client frames (wrangler sends its first frame
// unmasked, which strict servers reject), with 7-, 16- and 64-bit lengths.
// No extension is negotiated (permessage-deflate offers are ignored), so
// every RSV bit must be clear.

// Subprotocol is the one wrangler asks for; the ws client refuses a
// handshake that does not echo it.
const Subprotocol = "trace-v1"

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// Opcodes.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// Close status codes.
const (
	closeNormal        = 1000
	closeGoingAway     = 1001
	closeProtocolError = 1002
	closeTooBig        = 1009
)

// maxMessage bounds one client message (wrangler sends a few bytes).
const maxMessage = 1 << 20

// acceptKey is the Sec-WebSocket-Accept value of a Sec-WebSocket-Key.
func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// headerTokens returns the comma-separated tokens of every value of a
// header, trimmed and lower-cased.
func headerTokens(h http.Header, name string) []string {
	var out []string
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if t = strings.ToLower(strings.TrimSpace(t)); t != "" {
				out = append(out, t)
			}
		}
	}
	return out
}

func hasToken(h http.Header, name, token string) bool {
	for _, t := range headerTokens(h, name) {
		if t == token {
			return true
		}
	}
	return false
}

// handshakeError is a refused upgrade: the status and text to answer.
type handshakeError struct {
	status int
	msg    string
}

func (e *handshakeError) Error() string { return e.msg }

// checkUpgrade validates a client handshake and returns the subprotocol to
// answer ("" when the client asked for none we speak).
func checkUpgrade(r *http.Request) (string, error) {
	switch {
	case r.Method != http.MethodGet:
		return "", &handshakeError{http.StatusMethodNotAllowed, "websocket handshake must be a GET"}
	case !hasToken(r.Header, "Connection", "upgrade") || !hasToken(r.Header, "Upgrade", "websocket"):
		return "", &handshakeError{http.StatusUpgradeRequired, "this endpoint speaks WebSocket only (Upgrade: websocket)"}
	case r.Header.Get("Sec-WebSocket-Version") != "13":
		return "", &handshakeError{http.StatusUpgradeRequired, "unsupported Sec-WebSocket-Version; use 13"}
	}
	key := strings.TrimSpace(r.Header.Get("Sec-WebSocket-Key"))
	if b, err := base64.StdEncoding.DecodeString(key); err != nil || len(b) != 16 {
		return "", &handshakeError{http.StatusBadRequest, "missing or malformed Sec-WebSocket-Key"}
	}
	if hasToken(r.Header, "Sec-WebSocket-Protocol", Subprotocol) {
		return Subprotocol, nil
	}
	return "", nil
}

// upgrade completes the handshake checked by checkUpgrade and takes over
// the connection.
func upgrade(w http.ResponseWriter, r *http.Request, protocol string) (*wsConn, error) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, fmt.Errorf("hijack: %w", err)
	}
	var b strings.Builder
	b.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
	b.WriteString("Sec-WebSocket-Accept: " + acceptKey(strings.TrimSpace(r.Header.Get("Sec-WebSocket-Key"))) + "\r\n")
	if protocol != "" {
		b.WriteString("Sec-WebSocket-Protocol: " + protocol + "\r\n")
	}
	b.WriteString("\r\n")
	_ = conn.SetDeadline(time.Time{})
	_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := io.WriteString(conn, b.String()); err != nil {
		conn.Close()
		return nil, fmt.Errorf("write handshake: %w", err)
	}
	return &wsConn{c: conn, br: brw.Reader}, nil
}

// frame is one decoded frame.
type frame struct {
	fin     bool
	opcode  byte
	payload []byte
}

// protocolError ends a connection with a close code.
type protocolError struct {
	code int
	msg  string
}

func (e *protocolError) Error() string { return e.msg }

// readFrame reads one frame, masked or not. limit bounds the payload.
func readFrame(r io.Reader, limit int64) (frame, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return frame{}, err
	}
	f := frame{fin: hdr[0]&0x80 != 0, opcode: hdr[0] & 0x0F}
	if hdr[0]&0x70 != 0 {
		return frame{}, &protocolError{closeProtocolError, "reserved bits set without a negotiated extension"}
	}
	masked := hdr[1]&0x80 != 0
	n := int64(hdr[1] & 0x7F)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(r, ext[:]); err != nil {
			return frame{}, err
		}
		n = int64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err := io.ReadFull(r, ext[:]); err != nil {
			return frame{}, err
		}
		u := binary.BigEndian.Uint64(ext[:])
		if u>>63 != 0 {
			return frame{}, &protocolError{closeProtocolError, "64-bit length with the most significant bit set"}
		}
		n = int64(u)
	}
	if f.opcode >= 0x8 {
		if n > 125 || !f.fin {
			return frame{}, &protocolError{closeProtocolError, "control frame too long or fragmented"}
		}
	} else if f.opcode > opBinary {
		return frame{}, &protocolError{closeProtocolError, fmt.Sprintf("unknown opcode %#x", f.opcode)}
	}
	if n > limit {
		return frame{}, &protocolError{closeTooBig, fmt.Sprintf("frame of %d bytes exceeds the limit of %d", n, limit)}
	}
	var key [4]byte
	if masked {
		if _, err := io.ReadFull(r, key[:]); err != nil {
			return frame{}, err
		}
	}
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(r, f.payload); err != nil {
		return frame{}, err
	}
	if masked {
		for i := range f.payload {
			f.payload[i] ^= key[i&3]
		}
	}
	return f, nil
}

// appendFrame appends one unmasked (server) frame with fin set.
func appendFrame(dst []byte, opcode byte, payload []byte) []byte {
	dst = append(dst, 0x80|opcode)
	switch n := len(payload); {
	case n <= 125:
		dst = append(dst, byte(n))
	case n <= 0xFFFF:
		dst = append(dst, 126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, 127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	return append(dst, payload...)
}

// closePayload is the body of a close frame.
func closePayload(code int, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

const (
	writeTimeout = 10 * time.Second
	// readTimeout: wrangler pings every 10 s and the server pings every
	// pingInterval, so a silent peer for this long is gone.
	readTimeout  = 75 * time.Second
	pingInterval = 30 * time.Second
)

// wsConn is one server-side connection. Writes are serialised; reads
// happen on one goroutine.
type wsConn struct {
	c  net.Conn
	br *bufio.Reader

	wmu        sync.Mutex
	closeSent  bool
	closedOnce sync.Once
}

// write sends one frame. After a close frame nothing else is sent.
func (c *wsConn) write(opcode byte, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return net.ErrClosed
	}
	if opcode == opClose {
		c.closeSent = true
	}
	_ = c.c.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := c.c.Write(appendFrame(make([]byte, 0, len(payload)+10), opcode, payload))
	return err
}

// sendClose sends a close frame (once).
func (c *wsConn) sendClose(code int, reason string) error {
	return c.write(opClose, closePayload(code, reason))
}

// close drops the TCP connection.
func (c *wsConn) close() { c.closedOnce.Do(func() { c.c.Close() }) }

// errPeerClosed is returned by readLoop when the client closed cleanly.
var errPeerClosed = errors.New("closed by the client")

// readLoop reads client frames until the connection ends: it answers pings
// with pongs carrying the same payload, answers a close frame with a close
// frame, and passes every complete text or binary message to onMessage.
func (c *wsConn) readLoop(onMessage func(opcode byte, msg []byte)) error {
	var (
		msg    []byte
		msgOp  byte
		inFrag bool
	)
	for {
		_ = c.c.SetReadDeadline(time.Now().Add(readTimeout))
		f, err := readFrame(c.br, maxMessage)
		if err != nil {
			var pe *protocolError
			if errors.As(err, &pe) {
				_ = c.sendClose(pe.code, pe.msg)
			}
			return err
		}
		switch f.opcode {
		case opPing:
			if err := c.write(opPong, f.payload); err != nil && !errors.Is(err, net.ErrClosed) {
				return err
			}
		case opPong:
			// keep-alive answer; the read deadline was refreshed
		case opClose:
			code := closeNormal
			if len(f.payload) >= 2 {
				code = int(binary.BigEndian.Uint16(f.payload))
			}
			if code == 1005 || code == 1006 || code == 1015 {
				code = closeNormal
			}
			_ = c.sendClose(code, "")
			return errPeerClosed
		case opText, opBinary:
			if inFrag {
				_ = c.sendClose(closeProtocolError, "new message inside a fragmented one")
				return &protocolError{closeProtocolError, "new message inside a fragmented one"}
			}
			if f.fin {
				onMessage(f.opcode, f.payload)
				continue
			}
			msg, msgOp, inFrag = f.payload, f.opcode, true
		case opContinuation:
			if !inFrag {
				_ = c.sendClose(closeProtocolError, "continuation without a message")
				return &protocolError{closeProtocolError, "continuation without a message"}
			}
			if len(msg)+len(f.payload) > maxMessage {
				_ = c.sendClose(closeTooBig, "message too big")
				return &protocolError{closeTooBig, "message too big"}
			}
			msg = append(msg, f.payload...)
			if f.fin {
				onMessage(msgOp, msg)
				msg, inFrag = nil, false
			}
		}
	}
}
