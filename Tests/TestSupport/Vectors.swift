import MPTCPStack
import Testing

// Extracted from the Linux 6.18 reference captures in pcaps/reference-shared
// (see the .md note beside each capture; keys are in Support.swift `Keys`)
// by reading the classic pcap records in python: each string is the IP
// packet of one frame, Ethernet header stripped and cut at the IP length.
// Frame numbers are 1-based as in tshark (`tshark -r F -Y frame.number==N -x`).

package enum Captured {
    /// a-single-subflow.pcap frame 1: MP_CAPABLE SYN (len 4, flags H) (64 bytes)
    package static let aSYN = Vector(name: "aSYN", source: "a #1", hex: "450000406c7140004006b81c0a1401010a140102edf41f9067801a3600000000b002faf071690000020405b40402080ab48352b0000000000103030a1e040101")
    /// a-single-subflow.pcap frame 2: MP_CAPABLE SYN/ACK (len 12, server key) (72 bytes)
    package static let aSYNACK = Vector(name: "aSYNACK", source: "a #2", hex: "4500004800004000400624860a1401020a1401011f90edf4c70f8d1867801a37d012fe88c4780000020405b40402080a88da4390b48352b00103030a1e0c0101a78ab8b13030d837")
    /// a-single-subflow.pcap frame 3: MP_CAPABLE third ACK (len 20, both keys) (72 bytes)
    package static let aACK = Vector(name: "aACK", source: "a #3", hex: "450000486c7240004006b8130a1401010a140102edf41f9067801a37c70f8d19d010003fd08e00000101080ab48352b088da43901e140101220ca80f410bf5cba78ab8b13030d837")
    /// a-single-subflow.pcap frame 4: MP_CAPABLE ACK+data (len 22, data-level length 696) (772 bytes)
    package static let aFirstData = Vector(name: "aFirstData", source: "a #4", hex: """
        450003046c7340004006b5560a1401010a140102edf41f9067801a37c70f8d19e018003f749e00000101080ab48352b088da43901e160101220ca80f410bf5cb
        a78ab8b13030d83702b80101505554203638380a54686520717569636b2062726f776e20666f78206a756d7073206f76657220746865206c617a7920646f672e
        204d50544350207631207265666572656e63652063617074757265207061796c6f6164206c696e652e0a54686520717569636b2062726f776e20666f78206a75
        6d7073206f76657220746865206c617a7920646f672e204d50544350207631207265666572656e63652063617074757265207061796c6f6164206c696e652e0a
        54686520717569636b2062726f776e20666f78206a756d7073206f76657220746865206c617a7920646f672e204d50544350207631207265666572656e636520
        63617074757265207061796c6f6164206c696e652e0a54686520717569636b2062726f776e20666f78206a756d7073206f76657220746865206c617a7920646f
        672e204d50544350207631207265666572656e63652063617074757265207061796c6f6164206c696e652e0a54686520717569636b2062726f776e20666f7820
        6a756d7073206f76657220746865206c617a7920646f672e204d50544350207631207265666572656e63652063617074757265207061796c6f6164206c696e65
        2e0a54686520717569636b2062726f776e20666f78206a756d7073206f76657220746865206c617a7920646f672e204d50544350207631207265666572656e63
        652063617074757265207061796c6f6164206c696e652e0a54686520717569636b2062726f776e20666f78206a756d7073206f76657220746865206c617a7920
        646f672e204d50544350207631207265666572656e63652063617074757265207061796c6f6164206c696e652e0a54686520717569636b2062726f776e20666f
        78206a756d7073206f76657220746865206c617a7920646f672e204d50544350207631207265666572656e63652063617074757265207061796c6f6164206c69
        6e652e0a
        """)
    /// a-single-subflow.pcap frame 5: DSS with 8-byte DATA_ACK only (64 bytes)
    package static let aDataAck8 = Vector(name: "aDataAck8", source: "a #5", hex: "45000040d902400040064b8b0a1401020a1401011f90edf4c70f8d1967801cefb010003a6b7700000101080a88da4390b48352b01e0c2003e7c1930ad7957aa7")
    /// a-single-subflow.pcap frame 6: DSS DATA_FIN, 4-byte DATA_ACK, 8-byte DSN, ssn 0, len 1 (76 bytes)
    package static let aDataFin4Ack = Vector(name: "aDataFin4Ack", source: "a #6", hex: "4500004c6c7440004006b80d0a1401010a140102edf41f9067801cefc70f8d19e010003f7b0f00000101080ab48352b088da43901e16201d688956a7e7c1930ad7957aa70000000000010101")
    /// a-single-subflow.pcap frame 8: DSS data: 8-byte DATA_ACK + 8-byte DSN mapping, 68 bytes payload (148 bytes)
    package static let aData8 = Vector(name: "aData8", source: "a #8", hex: """
        45000094d904400040064b350a1401020a1401011f90edf4c70f8d1967801ceff018003a3ef800000101080a88da4390b48352b01e1a200fe7c1930ad7957aa8
        f6b82d01688956a700000001004401014f4b20616264333965613836663830393936373838643932633136633130643432376362633662373938633230383238
        303461313163653831383564396433623535330a
        """)
    /// a-single-subflow.pcap frame 10: DSS DATA_FIN with 8-byte DATA_ACK (80 bytes)
    package static let aDataFin8Ack = Vector(name: "aDataFin8Ack", source: "a #10", hex: "45000050d905400040064b780a1401020a1401011f90edf4c70f8d5d67801ceff010003a46c700000101080a88da4390b48352b01e1a201fe7c1930ad7957aa8f6b82d01688956eb0000000000010101")
    /// a-single-subflow.pcap frame 11: subflow FIN with DSS 8-byte DATA_ACK (64 bytes)
    package static let aFIN = Vector(name: "aFIN", source: "a #11", hex: "450000406c7640004006b8170a1401010a140102edf41f9067801cefc70f8d5db011003f550500000101080ab48352b288da43901e0c2003f6b82d01688956ec")
    /// b-two-subflows-addaddr-join.pcap frame 1: MP_CAPABLE SYN (64 bytes)
    package static let bSYN = Vector(name: "bSYN", source: "b #1", hex: "4500004046ee40004006dd9f0a1401010a140102dba61f90418347af00000000b002faf036cd0000020405b40402080a830fc992000000000103030a1e040101")
    /// b-two-subflows-addaddr-join.pcap frame 2: MP_CAPABLE SYN/ACK (72 bytes)
    package static let bSYNACK = Vector(name: "bSYNACK", source: "b #2", hex: "4500004800004000400624860a1401020a1401011f90dba6f957959e418347b0d012fe8823e80000020405b40402080af155ab1d830fc9920103030a1e0c0101f04ce84007d7e35c")
    /// b-two-subflows-addaddr-join.pcap frame 3: MP_CAPABLE third ACK (72 bytes)
    package static let bACK = Vector(name: "bACK", source: "b #3", hex: "4500004846ef40004006dd960a1401010a140102dba61f90418347b0f957959fd010003f002100000101080a830fc992f155ab1d1e140101626ceb320231e0fff04ce84007d7e35c")
    /// b-two-subflows-addaddr-join.pcap frame 4: ADD_ADDR IPv4 with HMAC (len 16), from the server (68 bytes)
    package static let bAddAddr = Vector(name: "bAddAddr", source: "b #4", hex: "45000044f1e84000400632a10a1401020a1401011f90dba6f957959f418347b0c010003fada400000101080af155ab1d830fc9921e1030010a1402029ab7dd0aeca1b79b")
    /// b-two-subflows-addaddr-join.pcap frame 5: ADD_ADDR echo (E=1, len 8) (60 bytes)
    package static let bAddAddrEcho = Vector(name: "bAddAddrEcho", source: "b #5", hex: "4500003c46f040004006dda10a1401010a140102dba61f90418347b0f957959fa010003fe8b400000101080a830fc992f155ab1d1e0831010a140202")
    /// b-two-subflows-addaddr-join.pcap frame 6: MP_JOIN SYN (len 12) (72 bytes)
    package static let bJoinSYN = Vector(name: "bJoinSYN", source: "b #6", hex: "4500004842ac40004006dfd90a1402010a140202e32f1f9036e7b57f00000000d002faf08c390000020405b40402080a2a09e4db000000000103030a1e0c10010e568f1e11be9d50")
    /// b-two-subflows-addaddr-join.pcap frame 7: MP_JOIN SYN/ACK (len 16) (76 bytes)
    package static let bJoinSYNACK = Vector(name: "bJoinSYNACK", source: "b #7", hex: "4500004c00004000400622820a1402020a1402011f90e32f867e7d7036e7b580e012fe8843ec0000020405b40402080a98eb96692a09e4db0103030a1e101001e160d3b40d8a9f88aa6e4144")
    /// b-two-subflows-addaddr-join.pcap frame 8: MP_JOIN third ACK (len 24) (76 bytes)
    package static let bJoinACK = Vector(name: "bJoinACK", source: "b #8", hex: "4500004c42ad40004006dfd40a1402010a140202e32f1f9036e7b580867e7d71e010003f4ba000000101080a2a09e4db98eb96691e1810007e9674a37f663d63de1fe7ba40230ef9d06fbdc6")
    /// b-two-subflows-addaddr-join.pcap frame 9: MP_JOIN fourth ACK: DSS 4-byte DATA_ACK (60 bytes)
    package static let bJoin4thACK = Vector(name: "bJoin4thACK", source: "b #9", hex: "4500003cc1c24000400660cf0a1402020a1402011f90e32f867e7d7136e7b580a010003f806700000101080a98eb96692a09e4db1e082001f6a557e3")
    /// b-two-subflows-addaddr-join.pcap frame 10: client data: DSS 4-byte DATA_ACK + 8-byte DSN mapping (88 bytes)
    package static let bData4Ack = Vector(name: "bData4Ack", source: "b #10", hex: "4500005846f140004006dd840a1401010a140102dba61f90418347b0f957959fe018003fa2ea00000101080a830fc993f155ab1d1e16200d1bea011800b24946f6a557e300000001000c010147455420313034383537360a")
    /// b-two-subflows-addaddr-join.pcap frame 12: 1420-byte data segment, 40 option bytes (TS + 28-byte DSS) (1500 bytes)
    package static let bFullData = Vector(name: "bFullData", source: "b #12", hex: """
        450005dcf1ea400040062d070a1401020a1401011f90dba6f957959f418347bcf010003f895200000101080af155ab21830fc9931e1a200f00b24946f6a557ef
        40237fde1bea0118000000017a080101000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f
        303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f
        707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeaf
        b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeef
        f0f1f2f3f4f5f6f7f8f9fa000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334
        35363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f7071727374
        75767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4
        b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4
        f5f6f7f8f9fa000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f30313233343536373839
        3a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f70717273747576777879
        7a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9
        babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9
        fa000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e
        3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e
        7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbe
        bfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fa00010203
        0405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f40414243
        4445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f80818283
        8485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3
        c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fa000102030405060708
        090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748
        494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788
        898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4
        """)
    /// b-two-subflows-addaddr-join.pcap frame 1514: data + DATA_FIN in one mapping (len 1281) (1360 bytes)
    package static let bDataWithFin = Vector(name: "bDataWithFin", source: "b #1514", hex: """
        45000550c370400040065a0d0a1402020a1402011f90e32f86870f4136e7b580f018003f625300000101080a98eb96e12a09e5531e1a201f00b24946f6a557ef
        40237fde1bf9fc18000891d1050101017c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaab
        acadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaeb
        ecedeeeff0f1f2f3f4f5f6f7f8f9fa000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f30
        3132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f70
        7172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0
        b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0
        f1f2f3f4f5f6f7f8f9fa000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435
        363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475
        767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5
        b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5
        f6f7f8f9fa000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a
        3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a
        7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9ba
        bbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fa
        000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f
        404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f
        808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf
        c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fa0001020304
        05060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f4041424344
        45464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f8081828384
        85868788898a8b8c8d8e8f9091929394
        """)
    /// d-fallback-plain-tcp-server.pcap frame 1: MP_CAPABLE SYN to a plain TCP server (64 bytes)
    package static let dSYN = Vector(name: "dSYN", source: "d #1", hex: "45000040ff5040004006253d0a1401010a140102ee021f90f2c63bf800000000b002faf0bc6d0000020405b40402080a700d9f0b000000000103030a1e040101")
    /// d-fallback-plain-tcp-server.pcap frame 2: fallback SYN/ACK without MP_CAPABLE (60 bytes)
    package static let dSYNACK = Vector(name: "dSYNACK", source: "d #2", hex: "4500003c00004000400624920a1401020a1401011f90ee023591a85ff2c63bf9a012fe88dcaa0000020405b40402080a10da1c58700d9f0b0103030a")
    /// d-fallback-plain-tcp-server.pcap frame 3: plain TCP third ACK (no MPTCP option) (52 bytes)
    package static let dACK = Vector(name: "dACK", source: "d #3", hex: "45000034ff514000400625480a1401010a140102ee021f90f2c63bf93591a8608010003f09c400000101080a700d9f0b10da1c58")
    /// e-ipv6-single-subflow.pcap frame 1: IPv6 MP_CAPABLE SYN (84 bytes)
    package static let eSYN = Vector(name: "eSYN", source: "e #1", hex: "600fcc9a002c0640fd200003000000000000000000000001fd2000030000000000000000000000029c7c1f904e53136000000000b002fd207ea40000020405a00402080a21a16397000000000103030a1e040101")
    /// e-ipv6-single-subflow.pcap frame 2: IPv6 MP_CAPABLE SYN/ACK (92 bytes)
    package static let eSYNACK = Vector(name: "eSYNACK", source: "e #2", hex: "6003f1b600340640fd200003000000000000000000000002fd2000030000000000000000000000011f909c7cbe5cdcb94e531361d012fb04b1a00000020405a00402080aeb49818d21a163970103030a1e0c01011476bdfc4ba888f5")
    /// e-ipv6-single-subflow.pcap frame 3: IPv6 MP_CAPABLE third ACK (92 bytes)
    package static let eACK = Vector(name: "eACK", source: "e #3", hex: "600fcc9a00340640fd200003000000000000000000000001fd2000030000000000000000000000029c7c1f904e531361be5cdcbad0100040e01b00000101080a21a16397eb49818d1e140101fddcf56e7fac67fc1476bdfc4ba888f5")
    /// e-ipv6-single-subflow.pcap frame 4: IPv6 MP_CAPABLE ACK+data (len 22) (792 bytes)
    package static let eFirstData = Vector(name: "eFirstData", source: "e #4", hex: """
        600fcc9a02f00640fd200003000000000000000000000001fd2000030000000000000000000000029c7c1f904e531361be5cdcbae0180040842b00000101080a
        21a16397eb49818d1e160101fddcf56e7fac67fc1476bdfc4ba888f502b80101505554203638380a54686520717569636b2062726f776e20666f78206a756d70
        73206f76657220746865206c617a7920646f672e204d50544350207631207265666572656e63652063617074757265207061796c6f6164206c696e652e0a5468
        6520717569636b2062726f776e20666f78206a756d7073206f76657220746865206c617a7920646f672e204d50544350207631207265666572656e6365206361
        7074757265207061796c6f6164206c696e652e0a54686520717569636b2062726f776e20666f78206a756d7073206f76657220746865206c617a7920646f672e
        204d50544350207631207265666572656e63652063617074757265207061796c6f6164206c696e652e0a54686520717569636b2062726f776e20666f78206a75
        6d7073206f76657220746865206c617a7920646f672e204d50544350207631207265666572656e63652063617074757265207061796c6f6164206c696e652e0a
        54686520717569636b2062726f776e20666f78206a756d7073206f76657220746865206c617a7920646f672e204d50544350207631207265666572656e636520
        63617074757265207061796c6f6164206c696e652e0a54686520717569636b2062726f776e20666f78206a756d7073206f76657220746865206c617a7920646f
        672e204d50544350207631207265666572656e63652063617074757265207061796c6f6164206c696e652e0a54686520717569636b2062726f776e20666f7820
        6a756d7073206f76657220746865206c617a7920646f672e204d50544350207631207265666572656e63652063617074757265207061796c6f6164206c696e65
        2e0a54686520717569636b2062726f776e20666f78206a756d7073206f76657220746865206c617a7920646f672e204d50544350207631207265666572656e63
        652063617074757265207061796c6f6164206c696e652e0a
        """)
    /// e-ipv6-single-subflow.pcap frame 6: IPv6 DSS DATA_FIN, 4-byte DATA_ACK (96 bytes)
    package static let eDataFin = Vector(name: "eDataFin", source: "e #6", hex: "600fcc9a00380640fd200003000000000000000000000001fd2000030000000000000000000000029c7c1f904e531619be5cdcbae010003f8c4b00000101080a21a16397eb49818d1e16201d8fb7e07ccb4c22bb18a42c1a0000000000010101")
    /// e-ipv6-single-subflow.pcap frame 8: IPv6 DSS data, 68 bytes payload (168 bytes)
    package static let eData8 = Vector(name: "eData8", source: "e #8", hex: """
        6003f1b600800640fd200003000000000000000000000002fd2000030000000000000000000000011f909c7cbe5cdcba4e531619f018003ac4ac00000101080a
        eb49818d21a163971e1a200fcb4c22bb18a42c1b70cd3e748fb7e07c00000001004401014f4b2061626433396561383666383039393637383864393263313663
        3130643432376362633662373938633230383238303461313163653831383564396433623535330a
        """)
    /// g-fastclose.pcap frame 4: ADD_ADDR IPv4 with HMAC, from the server (68 bytes)
    package static let gAddAddr = Vector(name: "gAddAddr", source: "g #4", hex: "450000445ad840004006c9b10a1401020a1401011f9095dc8fe0c23aa7b129b1c010003f27b600000101080a6fd3dc2289894ad71e1030010a1402022e2762333ed8d5f1")
    /// g-fastclose.pcap frame 6: MP_JOIN SYN (72 bytes)
    package static let gJoinSYN = Vector(name: "gJoinSYN", source: "g #6", hex: "450000485b9340004006c6f20a1402010a140202da731f907c860e1100000000d002faf022a90000020405b40402080a11f7af14000000000103030a1e0c10017057ef462dc4e115")
    /// g-fastclose.pcap frame 7: MP_JOIN SYN/ACK (76 bytes)
    package static let gJoinSYNACK = Vector(name: "gJoinSYNACK", source: "g #7", hex: "4500004c00004000400622820a1402020a1402011f90da7383ed5d7a7c860e12e012fe882e9e0000020405b40402080a94233d1911f7af140103030a1e1010012a7670fd01c19ea8396726e9")
    /// g-fastclose.pcap frame 8: MP_JOIN third ACK (76 bytes)
    package static let gJoinACK = Vector(name: "gJoinACK", source: "g #8", hex: "4500004c5b9440004006c6ed0a1402010a140202da731f907c860e1283ed5d7be010003f1d5500000101080a11f7af1494233d191e1810000cf493051be0d909a4eab92c7f01bc9883750876")
    /// g-fastclose.pcap frame 42: RST with MP_FASTCLOSE + MP_TCPRST, initial subflow (68 bytes)
    package static let gFastclose1 = Vector(name: "gFastclose1", source: "g #42", hex: "450000445ae940004006c9a00a1401020a1401011f9095dc8fe0c23aa7b177ddc0140036a0be00000101080a6fd3de1789894ad81e0c7000a36e66c58dfe71e21e048000")
    /// g-fastclose.pcap frame 43: RST with MP_FASTCLOSE + MP_TCPRST, joined subflow (68 bytes)
    package static let gFastclose2 = Vector(name: "gFastclose2", source: "g #43", hex: "4500004473ed40004006ae9c0a1402020a1402011f90da7383ed5d7b7c860e12c014003fedd600000101080a94233f0e11f7af141e0c7000a36e66c58dfe71e21e048000")

    package static let all: [Vector] = [aSYN, aSYNACK, aACK, aFirstData, aDataAck8, aDataFin4Ack, aData8, aDataFin8Ack, aFIN, bSYN, bSYNACK, bACK, bAddAddr, bAddAddrEcho, bJoinSYN, bJoinSYNACK, bJoinACK, bJoin4thACK, bData4Ack, bFullData, bDataWithFin, dSYN, dSYNACK, dACK, eSYN, eSYNACK, eACK, eFirstData, eDataFin, eData8, gAddAddr, gJoinSYN, gJoinSYNACK, gJoinACK, gFastclose1, gFastclose2]
}

/// Single options built by hand from the RFC 8684 §3 layouts (and RFC 9293 /
/// RFC 2018 for plain TCP), for forms the captures do not contain. Each
/// carries the value it must decode to.
package struct OptionVector: Sendable, CustomTestStringConvertible {
    package let name: String
    package let bytes: [UInt8]
    package let expected: TCPOption
    package init(_ name: String, _ hex: String, _ expected: TCPOption) {
        self.name = name
        self.bytes = hexBytes(hex)
        self.expected = expected
    }
    package var testDescription: String { name }
}


package enum Handmade {
    package static let v6Addr = IPv6Address(high: 0xfd20_0002_0000_0000, low: 0x0000_0000_0000_0002)

    package static let options: [OptionVector] = [
        // MP_CAPABLE (§3.1): kind, len, subtype|version, A B C D E F G H flags.
        OptionVector("MP_CAPABLE SYN flags A|H", "1e 04 01 81",
                     .mptcp(.mpCapable(MPCapable(version: 1, flags: 0x81)))),
        OptionVector("MP_CAPABLE SYN/ACK flags A|B|C|H", "1e 0c 01 e1 0102030405060708",
                     .mptcp(.mpCapable(MPCapable(version: 1, flags: 0xe1, senderKey: 0x0102_0304_0506_0708)))),
        OptionVector("MP_CAPABLE v0 with key (RFC 6824 SYN)", "1e 0c 00 81 1122334455667788",
                     .mptcp(.mpCapable(MPCapable(version: 0, flags: 0x81, senderKey: 0x1122_3344_5566_7788)))),
        OptionVector("MP_CAPABLE len 24 with checksum, flag A",
                     "1e 18 01 81 1122334455667788 99aabbccddeeff00 05dc abcd",
                     .mptcp(.mpCapable(MPCapable(version: 1, flags: 0x81, senderKey: 0x1122_3344_5566_7788,
                                                 receiverKey: 0x99aa_bbcc_ddee_ff00, dataLevelLength: 1500,
                                                 checksum: 0xabcd)))),
        // MP_JOIN (§3.2) with the B (backup) bit.
        OptionVector("MP_JOIN SYN backup", "1e 0c 11 02 0e568f1e 11be9d50",
                     .mptcp(.mpJoin(.syn(flags: 1, addressID: 2, token: 0x0e56_8f1e, nonce: 0x11be_9d50)))),
        OptionVector("MP_JOIN SYN/ACK backup", "1e 10 11 03 e160d3b40d8a9f88 aa6e4144",
                     .mptcp(.mpJoin(.synAck(flags: 1, addressID: 3, truncatedHMAC: 0xe160_d3b4_0d8a_9f88, nonce: 0xaa6e_4144)))),
        OptionVector("MP_JOIN ACK reserved bits set", "1e 18 1a bc 0102030405060708 090a0b0c0d0e0f10 11121314",
                     .mptcp(.mpJoin(.ack(reserved: 0xabc, hmac: HMAC160(a: 0x0102_0304_0506_0708, b: 0x090a_0b0c_0d0e_0f10, c: 0x1112_1314))))),
        // DSS (§3.3).
        OptionVector("DSS 4-byte DSN with checksum", "1e 10 20 04 12345678 00000001 05a0 beef",
                     .mptcp(.dss(DSS(mapping: DSSMapping(dsn: 0x1234_5678, subflowSeq: 1, length: 1440, checksum: 0xbeef), dsn8: false)))),
        OptionVector("DSS 4-byte DATA_ACK, 4-byte DSN, checksum, DATA_FIN",
                     "1e 14 20 15 aabbccdd 12345678 00000000 0001 1234",
                     .mptcp(.dss(DSS(dataAck: 0xaabb_ccdd, dataAck8: false,
                                     mapping: DSSMapping(dsn: 0x1234_5678, subflowSeq: 0, length: 1, checksum: 0x1234),
                                     dsn8: false, dataFin: true)))),
        OptionVector("DSS only DATA_ACK 4 bytes", "1e 08 20 01 deadbeef",
                     .mptcp(.dss(DSS(dataAck: 0xdead_beef, dataAck8: false)))),
        OptionVector("DSS 8-byte DATA_ACK, 8-byte DSN, checksum",
                     "1e 1c 20 0f 0102030405060708 1112131415161718 00000064 0578 f00d",
                     .mptcp(.dss(DSS(dataAck: 0x0102_0304_0506_0708,
                                     mapping: DSSMapping(dsn: 0x1112_1314_1516_1718, subflowSeq: 100, length: 1400, checksum: 0xf00d))))),
        OptionVector("DSS 8-byte DSN, no DATA_ACK, no checksum", "1e 12 20 0c 1112131415161718 00000064 0578",
                     .mptcp(.dss(DSS(mapping: DSSMapping(dsn: 0x1112_1314_1516_1718, subflowSeq: 100, length: 1400))))),
        OptionVector("DSS no fields (len 4)", "1e 04 20 00", .mptcp(.dss(DSS()))),
        OptionVector("DSS reserved bits kept", "1e 08 2f e1 deadbeef",
                     .mptcp(.dss({ var d = DSS(dataAck: 0xdead_beef, dataAck8: false); d.flags = 0xe1; d.reserved = 0xf; return d }()))),
        // ADD_ADDR (§3.4.1).
        OptionVector("ADD_ADDR IPv4 with port and HMAC", "1e 12 30 04 0a140202 1f90 0102030405060708",
                     .mptcp(.addAddr(AddAddr(addressID: 4, address: .v4(IPv4Address(10, 20, 2, 2)), port: 8080, hmac: 0x0102_0304_0506_0708)))),
        OptionVector("ADD_ADDR IPv4 echo with port", "1e 0a 31 04 0a140202 1f90",
                     .mptcp(.addAddr(AddAddr(echo: true, addressID: 4, address: .v4(IPv4Address(10, 20, 2, 2)), port: 8080)))),
        OptionVector("ADD_ADDR IPv6 with HMAC, no port", "1e 1c 30 02 fd200002000000000000000000000002 1122334455667788",
                     .mptcp(.addAddr(AddAddr(addressID: 2, address: .v6(v6Addr), hmac: 0x1122_3344_5566_7788)))),
        OptionVector("ADD_ADDR IPv6 with port and HMAC", "1e 1e 30 03 fd200002000000000000000000000002 1f91 1122334455667788",
                     .mptcp(.addAddr(AddAddr(addressID: 3, address: .v6(v6Addr), port: 8081, hmac: 0x1122_3344_5566_7788)))),
        OptionVector("ADD_ADDR IPv6 echo, no port", "1e 14 31 02 fd200002000000000000000000000002",
                     .mptcp(.addAddr(AddAddr(echo: true, addressID: 2, address: .v6(v6Addr))))),
        OptionVector("ADD_ADDR IPv6 echo with port", "1e 16 31 03 fd200002000000000000000000000002 1f91",
                     .mptcp(.addAddr(AddAddr(echo: true, addressID: 3, address: .v6(v6Addr), port: 8081)))),
        // REMOVE_ADDR (§3.4.2).
        OptionVector("REMOVE_ADDR one id", "1e 04 40 05",
                     .mptcp(.removeAddr(RemoveAddr(addressIDs: InlineBytes40([5])!)))),
        OptionVector("REMOVE_ADDR three ids", "1e 06 40 01 02 07",
                     .mptcp(.removeAddr(RemoveAddr(addressIDs: InlineBytes40([1, 2, 7])!)))),
        // MP_PRIO (§3.3.8).
        OptionVector("MP_PRIO len 3 backup", "1e 03 51", .mptcp(.mpPrio(MPPrio(backup: true)))),
        OptionVector("MP_PRIO len 4 (v0 address id)", "1e 04 50 02", .mptcp(.mpPrio(MPPrio(backup: false, addressID: 2)))),
        // MP_FAIL (§3.7), MP_FASTCLOSE (§3.5), MP_TCPRST (§3.6).
        OptionVector("MP_FAIL", "1e 0c 60 00 0102030405060708", .mptcp(.mpFail(MPFail(dsn: 0x0102_0304_0506_0708)))),
        OptionVector("MP_FASTCLOSE reserved bits kept", "1e 0c 7a bc a36e66c58dfe71e2",
                     .mptcp(.mpFastclose({ var f = MPFastclose(receiverKey: 0xa36e_66c5_8dfe_71e2); f.reserved = 0xabc; return f }()))),
        OptionVector("MP_TCPRST T flag, reason 3", "1e 04 81 03", .mptcp(.mpTCPRST(MPTCPRst(flags: 1, reason: 3)))),
        OptionVector("MP_TCPRST U|V|W|T, reason 6", "1e 04 8f 06", .mptcp(.mpTCPRST(MPTCPRst(flags: 0xf, reason: 6)))),
        // Unknown MPTCP subtypes are kept whole.
        OptionVector("MP_EXPERIMENTAL (subtype 0xf)", "1e 06 f0 11 22 33",
                     .mptcp(.other(subtype: 0xf, bytes: InlineBytes40([0x1e, 0x06, 0xf0, 0x11, 0x22, 0x33])!))),
        OptionVector("unassigned MPTCP subtype 9", "1e 04 90 00",
                     .mptcp(.other(subtype: 9, bytes: InlineBytes40([0x1e, 0x04, 0x90, 0x00])!))),
        // Plain TCP options.
        OptionVector("SACK one block", "05 0a 00000064 000000c8",
                     .sack({ var s = SACKBlocks(); s.append(SACKBlock(left: TCPSeq(100), right: TCPSeq(200))); return s }())),
        OptionVector("SACK four blocks", "05 22 00000001 00000002 00000003 00000004 00000005 00000006 fffffff0 00000010",
                     .sack({
                         var s = SACKBlocks()
                         s.append(SACKBlock(left: TCPSeq(1), right: TCPSeq(2)))
                         s.append(SACKBlock(left: TCPSeq(3), right: TCPSeq(4)))
                         s.append(SACKBlock(left: TCPSeq(5), right: TCPSeq(6)))
                         s.append(SACKBlock(left: TCPSeq(0xffff_fff0), right: TCPSeq(0x10)))
                         return s
                     }())),
        OptionVector("MSS", "02 04 05 b4", .maxSegmentSize(1460)),
        OptionVector("window scale", "03 03 0e", .windowScale(14)),
        OptionVector("SACK permitted", "04 02", .sackPermitted),
        OptionVector("timestamps", "08 0a 01020304 fffffffe", .timestamps(value: 0x0102_0304, echoReply: 0xffff_fffe)),
        OptionVector("NOP", "01", .noOperation),
        OptionVector("EOL with padding", "00 00 00", .endOfList(padding: InlineBytes40([0, 0])!)),
        OptionVector("EOL with non-zero padding", "00 01 ff", .endOfList(padding: InlineBytes40([1, 0xff])!)),
        // Unknown TCP option kinds are kept whole.
        OptionVector("unknown kind 34 (TFO cookie)", "22 0a 0102030405060708",
                     .unknown(kind: 34, bytes: InlineBytes40(hexBytes("220a0102030405060708"))!)),
        OptionVector("unknown kind 19 (MD5 signature)", "13 12 00112233445566778899aabbccddeeff",
                     .unknown(kind: 19, bytes: InlineBytes40(hexBytes("131200112233445566778899aabbccddeeff"))!)),
        OptionVector("unknown kind 253 (experimental)", "fd 06 f989 abcd",
                     .unknown(kind: 253, bytes: InlineBytes40(hexBytes("fd06f989abcd"))!)),
        OptionVector("unknown kind 28 (user timeout)", "1c 04 800a",
                     .unknown(kind: 28, bytes: InlineBytes40(hexBytes("1c04800a"))!)),
        OptionVector("unknown kind with len 2", "c8 02",
                     .unknown(kind: 200, bytes: InlineBytes40(hexBytes("c802"))!)),
    ]
}
