// A grpc-go TestService server (and a ping-pong client) for the benchmark.
//
// It is the yardstick, not a contender: if h2load drives this server faster
// than any Python server, the load generator is not what limits them. Messages
// are handled as raw bytes (a pass-through codec registered as "proto") with
// the same hand-built grpc.testing encodings as bench/impls/common.py.
//
// Build (Debian packages golang-go and golang-google-grpc-dev, GOPATH mode):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o bench/venvs/go/benchgo bench/impls/go/main.go
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/metadata"
)

type rawCodec struct{}

func (rawCodec) Marshal(v interface{}) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v interface{}) error {
	p := v.(*[]byte)
	*p = append((*p)[:0], data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

func varint(b []byte, v uint64) []byte {
	return binary.AppendUvarint(b, v)
}

// payloadMessage is a message whose field 1 is Payload{body: size zero bytes}
// (SimpleResponse and StreamingOutputCallResponse have that shape).
func payloadMessage(size int) []byte {
	inner := varint([]byte{0x12}, uint64(size))
	inner = append(inner, make([]byte, size)...)
	out := varint([]byte{0x0a}, uint64(len(inner)))
	return append(out, inner...)
}

var cache = map[int][]byte{}

func response(size int) []byte {
	if r, ok := cache[size]; ok {
		return r
	}
	r := payloadMessage(size)
	cache[size] = r
	return r
}

// fields walks the top-level fields of a protobuf message.
func fields(msg []byte, fn func(num int, wire int, v uint64, data []byte)) {
	for len(msg) > 0 {
		key, n := binary.Uvarint(msg)
		msg = msg[n:]
		num, wire := int(key>>3), int(key&7)
		switch wire {
		case 0:
			v, n := binary.Uvarint(msg)
			msg = msg[n:]
			fn(num, wire, v, nil)
		case 2:
			l, n := binary.Uvarint(msg)
			msg = msg[n:]
			fn(num, wire, 0, msg[:l])
			msg = msg[l:]
		case 5:
			msg = msg[4:]
		case 1:
			msg = msg[8:]
		default:
			return
		}
	}
}

// responseSizes lists the sizes asked by a StreamingOutputCallRequest.
func responseSizes(req []byte) []int {
	var sizes []int
	fields(req, func(num, wire int, v uint64, data []byte) {
		if num == 2 && wire == 2 {
			size := 0
			fields(data, func(num, wire int, v uint64, _ []byte) {
				if num == 1 && wire == 0 {
					size = int(v)
				}
			})
			sizes = append(sizes, size)
		}
	})
	return sizes
}

func handle(srv interface{}, stream grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(stream)
	var req []byte
	switch method {
	case "/grpc.testing.TestService/UnaryCall":
		if err := stream.RecvMsg(&req); err != nil {
			return err
		}
		size := 0
		fields(req, func(num, wire int, v uint64, _ []byte) {
			if num == 2 && wire == 0 {
				size = int(v)
			}
		})
		out := response(size)
		return stream.SendMsg(&out)
	case "/grpc.testing.TestService/StreamingOutputCall":
		if err := stream.RecvMsg(&req); err != nil {
			return err
		}
		for _, size := range responseSizes(req) {
			out := response(size)
			if err := stream.SendMsg(&out); err != nil {
				return err
			}
		}
		return nil
	case "/grpc.testing.TestService/StreamingInputCall":
		total := 0
		for {
			if err := stream.RecvMsg(&req); err == io.EOF {
				break
			} else if err != nil {
				return err
			}
			fields(req, func(num, wire int, v uint64, data []byte) {
				if num == 1 && wire == 2 {
					fields(data, func(num, wire int, v uint64, body []byte) {
						if num == 2 && wire == 2 {
							total += len(body)
						}
					})
				}
			})
		}
		out := varint([]byte{0x08}, uint64(total))
		return stream.SendMsg(&out)
	case "/grpc.testing.TestService/FullDuplexCall":
		for {
			if err := stream.RecvMsg(&req); err == io.EOF {
				return nil
			} else if err != nil {
				return err
			}
			for _, size := range responseSizes(req) {
				out := response(size)
				if err := stream.SendMsg(&out); err != nil {
					return err
				}
			}
		}
	}
	return fmt.Errorf("unknown method %s", method)
}

// pingPong makes round trips on one FullDuplexCall and prints a JSON line.
func pingPong(target string, count int, seconds float64) {
	conn, err := grpc.Dial(target, grpc.WithInsecure())
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	desc := &grpc.StreamDesc{StreamName: "FullDuplexCall", ServerStreams: true, ClientStreams: true}
	ctx := metadata.NewOutgoingContext(context.Background(), metadata.MD{})
	stream, err := conn.NewStream(ctx, desc, "/grpc.testing.TestService/FullDuplexCall")
	if err != nil {
		panic(err)
	}
	// StreamingOutputCallRequest{response_parameters: [{size: 64}], payload: {body: 64 B}}
	req := []byte{0x12, 0x02, 0x08, 0x40}
	pl := varint([]byte{0x12}, 64)
	pl = append(pl, make([]byte, 64)...)
	req = append(req, 0x1a, byte(len(pl)))
	req = append(req, pl...)
	var resp []byte
	var rtts []float64
	deadline := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	start := time.Now()
	for i := 0; i < count && time.Now().Before(deadline); i++ {
		t := time.Now()
		if err := stream.SendMsg(&req); err != nil {
			panic(err)
		}
		if err := stream.RecvMsg(&resp); err != nil {
			panic(err)
		}
		rtts = append(rtts, time.Since(t).Seconds())
	}
	elapsed := time.Since(start).Seconds()
	stream.CloseSend()
	if err := stream.RecvMsg(&resp); err != io.EOF {
		fmt.Fprintln(os.Stderr, "expected end of stream, got", err)
		os.Exit(1)
	}
	sort.Float64s(rtts)
	n := len(rtts)
	fmt.Printf("{\"count\": %d, \"elapsed\": %f, \"p50\": %f, \"p99\": %f}\n",
		n, elapsed, rtts[n/2], rtts[n*99/100])
}

func main() {
	port := flag.Int("port", 0, "port to serve on (server mode)")
	target := flag.String("pingpong", "", "host:port to ping-pong against (client mode)")
	count := flag.Int("count", 2000, "round trips")
	seconds := flag.Float64("seconds", 10, "time limit of the client")
	flag.Parse()
	encoding.RegisterCodec(rawCodec{})
	if *target != "" {
		pingPong(*target, *count, *seconds)
		return
	}
	lis, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		panic(err)
	}
	s := grpc.NewServer(grpc.UnknownServiceHandler(handle))
	fmt.Println("listening", lis.Addr().(*net.TCPAddr).Port)
	s.Serve(lis)
}
