package dns

import (
	"encoding/binary"
	"errors"
	"net"
	"runtime"
	"sync"

	mdns "github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// UDP is served by our own loop rather than miekg/dns's Server: it reads and
// writes packets in batches (recvmmsg/sendmmsg), so one system call carries up
// to udpBatch queries or replies, and in-domain queries are answered on the
// reading goroutine without a goroutine per packet. On loopback this roughly
// halves the system-call time per query, which is most of the cost of a query.
// Queries that are forwarded get a goroutine each, since they wait on the
// network. TCP stays with miekg/dns's Server (ServeDNS).
//
// The loop needs a socket bound to one address, so that replies leave from the
// address queries came to; a wildcard address is served by miekg/dns's Server,
// which sets the source of each reply from the packet's control message.

const (
	udpBatch = 32
	// maxForwards bounds the queries waiting on upstreams; beyond it a query
	// gets SERVFAIL at once instead of a goroutine.
	maxForwards = 1024
)

type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// udpLoop serves one UDP socket.
type udpLoop struct {
	s    *Server
	conn *net.UDPConn
	bc   batchConn
}

func newUDPLoop(s *Server, conn *net.UDPConn) *udpLoop {
	l := &udpLoop{s: s, conn: conn}
	if conn.LocalAddr().(*net.UDPAddr).IP.To4() != nil {
		l.bc = ipv4.NewPacketConn(conn)
	} else {
		l.bc = ipv6.NewPacketConn(conn)
	}
	return l
}

// wantsBatchLoop reports whether the socket is bound to a single address.
func wantsBatchLoop(pc net.PacketConn) bool {
	ua, ok := pc.LocalAddr().(*net.UDPAddr)
	_, isUDP := pc.(*net.UDPConn)
	return ok && isUDP && !ua.IP.IsUnspecified()
}

// run serves until the socket is closed; it returns nil then, or the read
// error that stopped it.
func (l *udpLoop) run() error {
	readers := min(runtime.GOMAXPROCS(0), 4)
	var wg sync.WaitGroup
	errc := make(chan error, readers)
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- l.read()
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			return err
		}
	}
	return nil
}

func (l *udpLoop) read() error {
	in := make([]ipv4.Message, udpBatch)
	out := make([]ipv4.Message, udpBatch)
	replyBufs := make([][]byte, udpBatch)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, readBufSize)}
		out[i].Buffers = [][]byte{nil}
		replyBufs[i] = make([]byte, 0, maxUDPPayload)
	}
	for {
		n, err := l.bc.ReadBatch(in, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		k := 0
		for i := range n {
			pkt := in[i].Buffers[0][:in[i].N]
			reply, fwd := l.s.servePacket(pkt, replyBufs[i][:0], false)
			if fwd != nil {
				l.forward(fwd, in[i].Addr)
				continue
			}
			if reply == nil {
				continue
			}
			out[k].Buffers[0] = reply
			out[k].Addr = in[i].Addr
			k++
		}
		for sent := 0; sent < k; {
			m, err := l.bc.WriteBatch(out[sent:k], 0)
			if err != nil {
				// The client is gone (ICMP unreachable surfaces here);
				// skip its reply and go on with the rest.
				m = max(m, 1)
			}
			sent += m
		}
		for i := range k {
			out[i].Addr = nil
		}
	}
}

// forward answers req from the upstreams on its own goroutine.
func (l *udpLoop) forward(req *mdns.Msg, addr net.Addr) {
	select {
	case l.s.fwdSem <- struct{}{}:
	default:
		reply := new(mdns.Msg)
		reply.SetRcode(req, mdns.RcodeServerFailure)
		if b := l.s.finishAndPack(req, reply, false, nil); b != nil {
			l.conn.WriteTo(b, addr)
		}
		return
	}
	l.s.fwdWG.Add(1)
	go func() {
		defer l.s.fwdWG.Done()
		defer func() { <-l.s.fwdSem }()
		reply := l.s.forward(req, false)
		if b := l.s.finishAndPack(req, reply, false, nil); b != nil {
			l.conn.WriteTo(b, addr)
		}
	}()
}

// servePacket handles one raw query. It returns the packed reply (appended to
// buf), or nil when the packet deserves no reply (a response, or too short to
// carry an id), or the query to forward upstream.
//
// It applies the checks of miekg/dns's DefaultMsgAcceptFunc, so that UDP and
// TCP treat odd packets alike: responses are ignored, opcodes other than
// QUERY and NOTIFY get NOTIMP, and a question count other than one, too many
// records or a packet that does not unpack get FORMERR.
func (s *Server) servePacket(pkt, buf []byte, tcp bool) (reply []byte, fwd *mdns.Msg) {
	if len(pkt) < 12 {
		return nil, nil
	}
	h := mdns.Header{
		Id:      binary.BigEndian.Uint16(pkt[0:]),
		Bits:    binary.BigEndian.Uint16(pkt[2:]),
		Qdcount: binary.BigEndian.Uint16(pkt[4:]),
		Ancount: binary.BigEndian.Uint16(pkt[6:]),
		Nscount: binary.BigEndian.Uint16(pkt[8:]),
		Arcount: binary.BigEndian.Uint16(pkt[10:]),
	}
	req := new(mdns.Msg)
	action := mdns.DefaultMsgAcceptFunc(h)
	if action == mdns.MsgAccept && (req.Unpack(pkt) != nil || len(req.Question) != 1) {
		// miekg/dns unpacks a packet cut short before its question
		// without error, and with no question.
		action = mdns.MsgReject
	}
	switch action {
	case mdns.MsgIgnore:
		return nil, nil
	case mdns.MsgReject, mdns.MsgRejectNotImplemented:
		r := &mdns.Msg{MsgHdr: mdns.MsgHdr{
			Id:       h.Id,
			Response: true,
			Opcode:   int(h.Bits>>11) & 0xF,
			Rcode:    mdns.RcodeFormatError,
		}}
		if action == mdns.MsgRejectNotImplemented {
			r.Rcode = mdns.RcodeNotImplemented
		}
		s.q.rejected(r.Rcode)
		b, err := r.PackBuffer(buf)
		if err != nil {
			return nil, nil
		}
		return b, nil
	}
	if !inDomain(lower(req.Question[0].Name), s.domain) {
		return nil, req
	}
	return s.finishAndPack(req, s.answer(req), tcp, buf), nil
}
