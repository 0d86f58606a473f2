package redislimit_test

import (
	"log"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/limit"
	"github.com/keystile/keystile/middleware/limit/redislimit"
)

// A limiter shared by every instance that uses the same Redis and prefix.
// Requests are decided in memory from batches taken in the background;
// when Redis is out of reach, each instance limits on its own and the
// error reaches the reporter.
func ExampleNew() {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()
	l, err := redislimit.New(redislimit.Options{Client: client, Prefix: "myapi:rate:"})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	l.ReportErrors(func(err error) { log.Print(err) })

	var limiter limit.Limiter = l // what the middleware takes
	rate := apikey.RateLimit{Requests: 1000, Window: time.Minute}
	d := limiter.Allow("key_123", rate, 1, time.Now())
	log.Printf("allowed=%t remaining=%d", d.Allowed, d.Remaining)
}
