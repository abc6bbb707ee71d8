package aws_test

import (
	"context"
	"encoding/json"
	"log"
	"os"
	"time"

	"github.com/fstaid/fstaid"
	"github.com/fstaid/fstaid/contrib/aws"
)

// An Elastic IP handler with fencing, checked at start-up, and its
// report kept for the failover record.
func ExampleNewElasticIP() {
	ctx := context.Background()
	client, err := aws.NewClient(ctx, aws.ClientConfig{Region: "eu-west-1"})
	if err != nil {
		log.Fatal(err)
	}
	eip, err := aws.NewElasticIP(aws.ElasticIPConfig{
		AllocationID: "eipalloc-0123456789abcdef0",
		InstanceID:   "i-0standby",
		FenceConfig:  aws.FenceConfig{FenceInstanceID: "i-0active", FenceTimeout: aws.Duration(2 * time.Minute)},
	}, client, aws.WithReportFunc(func(r *aws.Report) {
		json.NewEncoder(os.Stdout).Encode(r) // e.g. into the failover record
	}))
	if err != nil {
		log.Fatal(err)
	}
	if err := eip.DryRun(ctx); err != nil {
		log.Fatalf("IAM: %v", err)
	}
	if err := eip.Validate(ctx); err != nil {
		log.Fatalf("resources: %v", err)
	}
	self, err := aws.NewIMDSCheck(aws.IMDSConfig{})
	if err != nil {
		log.Fatal(err)
	}
	m, err := fstaid.New(
		fstaid.WithPrimary(fstaid.HTTP("http://10.0.1.10/health"), 3*time.Second),
		fstaid.WithSelf(self, time.Second),
		fstaid.WithHandler("elastic-ip", eip, 3*time.Minute),
		fstaid.WithLock(fstaid.NewFileLock("/var/lib/fstaidd/fstaid.lock")),
	)
	if err != nil {
		log.Fatal(err)
	}
	log.Println(m.Run(ctx))
}
