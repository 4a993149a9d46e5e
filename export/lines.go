package export

import (
	"bufio"
	"errors"
	"io"
)

// MaxLineBytes bounds a line Verify reads. A record is at most a few
// hundred KiB even with every text member at its limit and escaped; a
// longer line is not an export's, and is refused rather than held.
const MaxLineBytes = 8 << 20

// errLineTooLong is lineReader's refusal of a line over MaxLineBytes.
var errLineTooLong = errors.New("line too long")

// lineReader reads lines in constant memory: a line that fits bufio's
// buffer is returned in place, a longer one is assembled in long, reused.
type lineReader struct {
	r    *bufio.Reader
	long []byte
	n    int64 // lines returned
}

// next returns the next line without its newline and whether it had one
// (only the last line of a file may lack it), or io.EOF when there is no
// more input. The line is valid until the next call.
func (lr *lineReader) next() (line []byte, complete bool, err error) {
	b, err := lr.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		b, err = lr.assemble(b)
	}
	switch {
	case err == nil:
		lr.n++
		return b[:len(b)-1], true, nil
	case err == io.EOF && len(b) > 0:
		lr.n++
		return b, false, nil
	default:
		return nil, false, err
	}
}

// assemble reads the rest of a line longer than bufio's buffer into long.
func (lr *lineReader) assemble(first []byte) ([]byte, error) {
	lr.long = append(lr.long[:0], first...)
	for {
		b, err := lr.r.ReadSlice('\n')
		if len(lr.long)+len(b) > MaxLineBytes {
			return nil, errLineTooLong
		}
		lr.long = append(lr.long, b...)
		if err != bufio.ErrBufferFull {
			return lr.long, err
		}
	}
}
