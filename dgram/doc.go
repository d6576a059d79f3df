// Package dgram is Node.js's dgram module (UDP sockets) for Go, with Node
// v20's semantics: the same calls, event order and errors.
//
// A Loop is Node's event loop. Sockets are created on a loop and every
// listener and callback of theirs runs on the goroutine that calls
// Loop.Run, one at a time, never inside the call that caused it:
//
//	loop := dgram.NewLoop(host) // a *stack.Host, or dgram.System() for the OS
//	server, _ := loop.CreateSocket("udp4", nil)
//	server.OnMessage(func(msg []byte, rinfo dgram.RemoteInfo) {
//		fmt.Printf("server got: %s from %s:%d\n", msg, rinfo.Address, rinfo.Port)
//	})
//	server.OnListening(func() {
//		address, _ := server.Address()
//		fmt.Printf("server listening %s:%d\n", address.Address, address.Port)
//	})
//	server.Bind(41234, "", nil)
//	loop.Run(ctx) // returns when no socket is left open
//
// Errors follow Node's error-delivery rules: what Node throws is returned;
// bind failures are 'error' events; send failures go to the send callback
// (and are dropped without one); lookup failures go to the callback or to
// 'error'. Every error is an *Error with Node's code and message, and
// system errors unwrap to their syscall.Errno. An 'error' event with no
// listener ends Loop.Run with that error; the sends and datagrams it
// discards are counted in the sockets' Stats. A conn closed under its socket
// (by the network: a virtual host closed, a TUN device deleted) is an
// 'error' event, "recvmsg ENETDOWN" ("recvmsg EBADF" when the network's
// error carries no errno), after which the socket reads no more; closing
// it emits 'close' as usual.
//
// Beyond the seed's subset, a Socket has the rest of Node v20's dgram API:
// Connect, Disconnect and RemoteAddress (with the 'connect' event and
// Linux's reset of the local address on disconnect), ICMP port
// unreachable reported on connected sockets, SetTTL, the multicast calls
// (SetMulticastTTL, SetMulticastLoopback, SetMulticastInterface,
// AddMembership, DropMembership and their source-specific forms), buffer
// sizes, the send queue, SendBuffers, and the createSocket options in
// SocketOptions (ReuseAddr, IPv6Only, buffer sizes, a custom Lookup, and a
// Context as Node's signal). Where Go's types make a Node quirk impossible
// or pointless, the method's doc says what it does instead.
//
// The package imports only the standard library: it reaches the network
// through the Network interface, which virtual hosts (package stack) and
// System (the operating system's sockets) implement.
package dgram
