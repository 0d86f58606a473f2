package clientip_test

import (
	"fmt"
	"net/http/httptest"
	"net/netip"

	"github.com/keystile/keystile/internal/clientip"
)

func ExampleResolver_Addr() {
	res, err := clientip.New(clientip.Options{
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		Header:         clientip.XForwardedFor,
	})
	if err != nil {
		panic(err)
	}

	// Through the load balancer 10.0.0.1: the client it saw.
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.0.0.1:51000"
	r.Header.Set("X-Forwarded-For", "6.6.6.6, 198.51.100.1")
	fmt.Println(res.Addr(r))

	// Directly from the internet: the header is the client's own claim.
	r.RemoteAddr = "203.0.113.7:51000"
	fmt.Println(res.Addr(r))
	// Output:
	// 198.51.100.1
	// 203.0.113.7
}
