;; hello.wat -- a WASI command written by hand.
;;
;;   bacalao wasm run --embedded examples/wasm/hello.wat       -> Hello, World!
;;   bacalao wasm run --embedded examples/wasm/hello.wat Ada   -> Hello, Ada!
;;   bacalao wasm run examples/wasm/hello.wat Ada              (on a running devstack)
;;
;; It greets its first argument (argv[1]), or the World when there is none, on stdout.
(module
  ;; WASI preview 1: read the arguments, write to a file descriptor.
  (import "wasi_snapshot_preview1" "args_sizes_get"
    (func $args_sizes_get (param $argc_out i32) (param $buf_size_out i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get"
    (func $args_get (param $argv_out i32) (param $buf_out i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param $fd i32) (param $iovs i32) (param $iovs_len i32)
                    (param $written_out i32) (result i32)))

  ;; WASI functions read and write this memory, so it must be exported as "memory".
  (memory (export "memory") 1)

  ;; Memory layout
  ;;    0  argc                      (i32)
  ;;    4  size of the argv strings  (i32)
  ;;    8  bytes written by fd_write (i32)
  ;;   16  one iovec {ptr, len}      (8 bytes)
  ;;  64.. the constant strings below
  ;; 1024  argv: one pointer per argument
  ;; 2048  the argument strings, each ending in a NUL byte
  (data (i32.const 64) "Hello, ")
  (data (i32.const 80) "World")
  (data (i32.const 96) "!\n")

  (global $argv i32 (i32.const 1024))
  (global $argv_buf i32 (i32.const 2048))

  ;; The length of the NUL-terminated string at $ptr.
  (func $strlen (param $ptr i32) (result i32)
    (local $end i32)
    (local.set $end (local.get $ptr))
    (block $done
      (loop $next
        (br_if $done (i32.eqz (i32.load8_u (local.get $end))))
        (local.set $end (i32.add (local.get $end) (i32.const 1)))
        (br $next)))
    (i32.sub (local.get $end) (local.get $ptr)))

  ;; Write the $len bytes at $ptr to stdout (fd 1). fd_write may write fewer bytes than
  ;; asked, so write again from where it stopped until all are out (or nothing moves).
  (func $print (param $ptr i32) (param $len i32)
    (block $done
      (loop $more
        (br_if $done (i32.eqz (local.get $len)))
        (i32.store (i32.const 16) (local.get $ptr))
        (i32.store (i32.const 20) (local.get $len))
        (br_if $done (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 8)))
        (br_if $done (i32.eqz (i32.load (i32.const 8))))
        (local.set $ptr (i32.add (local.get $ptr) (i32.load (i32.const 8))))
        (local.set $len (i32.sub (local.get $len) (i32.load (i32.const 8))))
        (br $more))))

  (func $main (export "_start")
    (local $name i32)
    (local $name_len i32)
    ;; Default name: "World".
    (local.set $name (i32.const 80))
    (local.set $name_len (i32.const 5))

    ;; argv[0] is the program; argv[1], when present, is the name to greet.
    ;; (The strings fit in the 62 KiB left above $argv_buf for any sensible command line.)
    (drop (call $args_sizes_get (i32.const 0) (i32.const 4)))
    (if (i32.ge_u (i32.load (i32.const 0)) (i32.const 2))
      (then
        (drop (call $args_get (global.get $argv) (global.get $argv_buf)))
        (local.set $name (i32.load (i32.add (global.get $argv) (i32.const 4))))
        (local.set $name_len (call $strlen (local.get $name)))))

    (call $print (i32.const 64) (i32.const 7))                ;; "Hello, "
    (call $print (local.get $name) (local.get $name_len))     ;; the name
    (call $print (i32.const 96) (i32.const 2)))               ;; "!\n"
)
