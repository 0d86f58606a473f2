package apikey_test

import (
	"fmt"

	"github.com/keystile/keystile/apikey"
)

// An OriginSet checks a request's Origin against an environment's allowed
// origins; a wildcard admits only subdomains of its own registrable domain.
func ExampleOriginSet() {
	set, err := apikey.ParseOriginSet([]string{"https://app.example.com", "https://*.example.org"})
	if err != nil {
		panic(err)
	}
	fmt.Println(set.Allows("https://app.example.com"))
	fmt.Println(set.Allows("https://a.b.example.org"))
	fmt.Println(set.Allows("https://example.org"))
	fmt.Println(set.Allows("null"))

	_, err = apikey.ParseOriginSet([]string{"https://*.amazonaws.com"})
	fmt.Println(err)
	// Output:
	// true
	// true
	// false
	// false
	// entry 1: apikey: invalid origin: a wildcard cannot stand before amazonaws.com: public suffixes lie under it, so it would admit other registrable domains
}
