package proxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// transport sends the batches that google/nftables builds.
//
// google/nftables asks the kernel to acknowledge every message of a batch
// and to echo every rule back, then reads those answers one by one: for a
// full rebuild of 1,000 Services x 10 endpoints that is ~45,000 messages,
// ~75,000 answers and twice as many recvmsg calls, several times the
// kernel's own work. So the library's Conn is pointed at a recording
// socket (its test dialer): Flush hands the marshalled batch over and gets
// an acknowledgement for each message at once. The transport then sends
// the batch on its own socket in one sendmsg, asking for one
// acknowledgement, of the last message: the kernel still reports every
// failing message, and the batch is one transaction either way.
type transport struct {
	nl    *netlink.Conn
	batch []netlink.Message
	ack   []netlink.Message
	seq   uint32
	buf   []byte // the last batch's bytes, reused
}

func newTransport(cfg *Config) (*transport, error) {
	nl, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: cfg.nsFD()})
	if err != nil {
		return nil, fmt.Errorf("proxy: netfilter socket: %w", err)
	}
	if err := bigBuffers(nl); err != nil {
		nl.Close()
		return nil, fmt.Errorf("proxy: netfilter socket buffers: %w", err)
	}
	// NETLINK_EXT_ACK: errors carry the kernel's message; CAP_ACK: they do
	// not carry the whole failing request back.
	_ = nl.SetOption(netlink.ExtendedAcknowledge, true)
	_ = nl.SetOption(netlink.CapAcknowledge, true)
	return &transport{nl: nl, ack: []netlink.Message{{
		Header: netlink.Header{Type: netlink.Error},
		Data:   make([]byte, 4+16), // errno 0, then the request's header
	}}}, nil
}

// socketBuffer is the send and receive buffer of the socket: a full
// rebuild of 1,000 Services x 10 endpoints is a batch of ~8 MB, sent in
// one sendmsg.
const socketBuffer = 64 << 20

// maxKeptBuffer bounds the batch buffer kept between Syncs.
const maxKeptBuffer = 1 << 20

func bigBuffers(c *netlink.Conn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		serr = errors.Join(
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, socketBuffer),
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, socketBuffer))
	})
	return errors.Join(err, serr)
}

// conn returns a google/nftables Conn whose Flush records its batch here.
func (t *transport) conn() (*nftables.Conn, error) {
	return nftables.New(nftables.WithTestDial(t.record))
}

// record is the recording socket: a batch is kept, and every read the
// library makes for an acknowledgement gets one.
func (t *transport) record(req []netlink.Message) ([]netlink.Message, error) {
	if req == nil {
		return t.ack, nil
	}
	t.batch = req
	return nil, nil
}

// flush sends the batch recorded by c.Flush as one transaction.
func (t *transport) flush(c *nftables.Conn) error {
	t.batch = nil
	if err := c.Flush(); err != nil {
		return fmt.Errorf("marshal batch: %w", err)
	}
	msgs := t.batch
	t.batch = nil
	if len(msgs) <= 2 { // begin and end only
		return nil
	}
	// One buffer for the whole batch, kept for the next one (the library's
	// SendMessages would grow a new one message by message).
	size := 0
	for i := range msgs {
		size += unix.NLMSG_HDRLEN + len(msgs[i].Data) + unix.NLMSG_ALIGNTO
	}
	b := slices.Grow(t.buf[:0], size)
	var begin, last uint32
	for i := range msgs {
		m := &msgs[i]
		flags := m.Header.Flags &^ (netlink.Acknowledge | netlink.Echo)
		if i == len(msgs)-2 {
			flags |= netlink.Acknowledge
		}
		t.seq++
		switch i {
		case 0:
			begin = t.seq
		case len(msgs) - 2:
			last = t.seq
		}
		n := unix.NLMSG_HDRLEN + len(m.Data)
		b = binary.NativeEndian.AppendUint32(b, uint32(n))
		b = binary.NativeEndian.AppendUint16(b, uint16(m.Header.Type))
		b = binary.NativeEndian.AppendUint16(b, uint16(flags))
		b = binary.NativeEndian.AppendUint32(b, t.seq)
		b = binary.NativeEndian.AppendUint32(b, 0) // port id: the kernel's to fill
		b = append(b, m.Data...)
		for ; n%unix.NLMSG_ALIGNTO != 0; n++ {
			b = append(b, 0)
		}
		m.Header.Sequence = t.seq
	}
	if cap(b) <= maxKeptBuffer {
		t.buf = b
	} else {
		t.buf = nil // a full rebuild's 8 MB are not kept for the next small change
	}
	raw, err := t.nl.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = raw.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return serr != unix.EAGAIN
	})
	if err = errors.Join(err, serr); err != nil {
		return fmt.Errorf("send batch: %w", err)
	}
	return t.wait(begin, last, msgs)
}

// wait reads the kernel's answers to a batch until the acknowledgement of
// its last message, or an error about the batch as a whole (reported
// against its first message), and returns the errors reported on the way.
// It reads the socket directly: the library's Receive turns a failure into
// an error without saying which message failed.
func (t *transport) wait(begin, last uint32, sent []netlink.Message) error {
	_ = t.nl.SetReadDeadline(time.Now().Add(time.Minute))
	defer t.nl.SetReadDeadline(time.Time{})
	raw, err := t.nl.SyscallConn()
	if err != nil {
		return err
	}
	types := make(map[uint32]netlink.HeaderType, 8)
	var errs error
	buf := make([]byte, 64<<10)
	for {
		var n int
		var rerr error
		err := raw.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
			return rerr != unix.EAGAIN
		})
		if err = errors.Join(err, rerr); err != nil {
			return errors.Join(errs, fmt.Errorf("read acknowledgements: %w", err))
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return errors.Join(errs, fmt.Errorf("read acknowledgements: %w", err))
		}
		for _, m := range msgs {
			if m.Header.Type != unix.NLMSG_ERROR || len(m.Data) < 4+unix.NLMSG_HDRLEN {
				continue
			}
			errno := int32(binary.NativeEndian.Uint32(m.Data))
			seq := binary.NativeEndian.Uint32(m.Data[4+8:])
			if errno != 0 {
				if len(types) == 0 {
					for _, s := range sent {
						types[s.Header.Sequence] = s.Header.Type
					}
				}
				errs = errors.Join(errs, fmt.Errorf("%s: %w%s", msgName(types[seq]), syscall.Errno(-errno), extAck(m)))
			}
			if seq == last || seq == begin {
				return errs
			}
		}
	}
}

// extAck returns the kernel's explanation of an error, if it gave one.
func extAck(m syscall.NetlinkMessage) string {
	if m.Header.Flags&unix.NLM_F_ACK_TLVS == 0 {
		return ""
	}
	off := 4 + unix.NLMSG_HDRLEN
	if m.Header.Flags&unix.NLM_F_CAPPED == 0 {
		off = 4 + int(binary.NativeEndian.Uint32(m.Data[4:]))
	}
	if off > len(m.Data) {
		return ""
	}
	attrs, err := netlink.UnmarshalAttributes(m.Data[off:])
	if err != nil {
		return ""
	}
	for _, a := range attrs {
		if a.Type == unix.NLMSGERR_ATTR_MSG {
			return " (" + strings.TrimRight(string(a.Data), "\x00") + ")"
		}
	}
	return ""
}

// msgName names an nftables message type in errors.
func msgName(t netlink.HeaderType) string {
	switch int(t) & 0xff {
	case unix.NFT_MSG_NEWTABLE:
		return "add table"
	case unix.NFT_MSG_DELTABLE:
		return "delete table"
	case unix.NFT_MSG_NEWCHAIN:
		return "add chain"
	case unix.NFT_MSG_DELCHAIN:
		return "delete chain"
	case unix.NFT_MSG_NEWRULE:
		return "add rule"
	case unix.NFT_MSG_DELRULE:
		return "flush chain"
	case unix.NFT_MSG_NEWSET:
		return "add set"
	case unix.NFT_MSG_DELSET:
		return "delete set"
	case unix.NFT_MSG_NEWSETELEM:
		return "add elements"
	case unix.NFT_MSG_DELSETELEM:
		return "delete elements"
	}
	return fmt.Sprintf("batch (message type %#x)", uint16(t))
}
