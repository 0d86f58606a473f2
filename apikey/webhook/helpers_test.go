package webhook_test

import (
	"bytes"
	"encoding/base64"
)

func encodeStd(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
